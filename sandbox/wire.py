"""Wire format shared by everything inside the sandbox (stdlib only): length-prefixed JSON frames and the plain-data codec.

Only plain data crosses from the candidate to the judge: None, bool, int, float, complex, str, bytes,
list, tuple, dict, set, frozenset. The candidate side encodes (it may lie about anything, it is only
data); the judge side decodes into fresh builtin objects, so no candidate-defined type, ``__eq__``
or ``__hash__`` ever reaches the test.
"""
import json
import os
import struct

HDR = struct.Struct("!I")
MAX_FRAME = 16 * 1024 * 1024


# ---- framing ---------------------------------------------------------------------------------
def read_exact(fd, n):
    chunks, got = [], 0
    while got < n:
        data = os.read(fd, min(n - got, 1 << 20))
        if not data:
            raise EOFError("channel closed")
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


def read_into(fd, buf, n):
    view, got = memoryview(buf), 0
    while got < n:
        k = os.readv(fd, [view[got:n]])
        if k == 0:
            raise EOFError("channel closed")
        got += k


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def send_frame(fd, obj):
    data = json.dumps(obj).encode()
    write_all(fd, HDR.pack(len(data)) + data)


def recv_frame(fd):
    (n,) = HDR.unpack(read_exact(fd, HDR.size))
    if n > MAX_FRAME:
        raise ValueError("frame too large")
    return json.loads(read_exact(fd, n))


# ---- plain-data codec: the candidate encodes, the judge decodes into builtins only ---------------
def encode(x):
    if x is None or isinstance(x, (bool, str)):
        return str(x) if isinstance(x, str) and type(x) is not str else x
    if isinstance(x, int):
        return int(x)
    if isinstance(x, float):
        return float(x)
    if isinstance(x, list):
        return [encode(v) for v in x]
    if isinstance(x, tuple):
        return {"t": [encode(v) for v in x]}
    if isinstance(x, dict):
        return {"d": [[encode(k), encode(v)] for k, v in x.items()]}
    if isinstance(x, frozenset):
        return {"f": [encode(v) for v in x]}
    if isinstance(x, set):
        return {"s": [encode(v) for v in x]}
    if isinstance(x, (bytes, bytearray)):
        return {"b": bytes(x).hex()}
    if isinstance(x, complex):
        return {"c": [x.real, x.imag]}
    raise TypeError(f"a {type(x).__name__} cannot cross the sandbox boundary")


def decode(j):
    t = type(j)
    if j is None or t in (bool, int, float, str):
        return j
    if t is list:
        return [decode(v) for v in j]
    if t is dict and len(j) == 1:
        ((tag, v),) = j.items()
        if tag == "t":
            return tuple(decode(x) for x in v)
        if tag == "d":
            return {decode(k): decode(x) for k, x in v}
        if tag == "s":
            return {decode(x) for x in v}
        if tag == "f":
            return frozenset(decode(x) for x in v)
        if tag == "b":
            return bytes.fromhex(v)
        if tag == "c" and all(type(x) in (int, float) for x in v):
            return complex(*v)
    raise ValueError("malformed value from the candidate")
