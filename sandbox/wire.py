"""Wire format shared by everything inside the sandbox (stdlib only): length-prefixed JSON frames and the plain-data codec.

Only plain data crosses from the candidate to the judge: None, bool, int, float, complex, str, bytes,
list, tuple, dict, set, frozenset, and ``fractions.Fraction`` / ``decimal.Decimal`` as their numbers. The
candidate side encodes (it may lie about anything, it is only data); the judge side decodes into fresh
builtin (or stdlib) objects, so no candidate-defined type, ``__eq__`` or ``__hash__`` ever reaches the test.
Decoding is linear in the frame: sets and dict keys whose hashes collide are refused, not built.
"""
import json
import os
import select
import struct
import sys
import time

HDR = struct.Struct("!I")
MAX_FRAME = 16 * 1024 * 1024
MAX_REPLY = 4 * 1024 * 1024   # largest frame the judge accepts from a candidate (HumanEval's replies: < 10 KB)
MAX_DECIMAL = 10_000          # characters of a Decimal's text


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


def recv_frame_waiting(fd, wait, buffer, limit=MAX_REPLY):
    """One frame from an untrusted peer, read in chunks into ``buffer`` (what follows the frame stays there),
    calling ``wait(fd)`` before each read: a stall mid-frame hits wait's limits, an oversized frame is refused."""
    while len(buffer) < HDR.size:
        fill(fd, wait, buffer, 1 << 16)
    (n,) = HDR.unpack_from(buffer)
    if n > limit:
        raise ValueError("frame too large")
    while len(buffer) < HDR.size + n:
        fill(fd, wait, buffer, min(1 << 20, HDR.size + n - len(buffer)))
    frame = bytes(buffer[HDR.size:HDR.size + n])
    del buffer[:HDR.size + n]
    return json.loads(frame)


def fill(fd, wait, buffer, most):
    wait(fd)
    data = os.read(fd, most)
    if not data:
        raise EOFError("channel closed")
    buffer += data


def wait_until(deadline):
    """A ``wait`` for recv_frame_waiting: readable before the monotonic deadline, else TimeoutError."""
    def wait(fd):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise TimeoutError("peer stalled")
    return wait


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
    fractions, decimal = sys.modules.get("fractions"), sys.modules.get("decimal")
    if fractions is not None and isinstance(x, fractions.Fraction):
        return {"q": [int(fractions.Fraction.numerator.fget(x)), int(fractions.Fraction.denominator.fget(x))]}
    if decimal is not None and isinstance(x, decimal.Decimal):
        return {"D": decimal.Decimal.__str__(x)}
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
            pairs = [(decode(k), decode(x)) for k, x in v]
            return dict(pairs) if few_collisions([k for k, _ in pairs]) else refuse()
        if tag == "s":
            items = [decode(x) for x in v]
            return set(items) if few_collisions(items) else refuse()
        if tag == "f":
            items = [decode(x) for x in v]
            return frozenset(items) if few_collisions(items) else refuse()
        if tag == "b":
            return bytes.fromhex(v)
        if tag == "c" and all(type(x) in (int, float) for x in v):
            return complex(*v)
        if tag == "q" and len(v) == 2 and all(type(x) is int for x in v) and v[1] != 0:
            import fractions
            return fractions.Fraction(*v)
        if tag == "D" and type(v) is str and len(v) <= MAX_DECIMAL:
            import decimal
            return decimal.Decimal(v)
    raise ValueError("malformed value from the candidate")


def few_collisions(items):
    """False when many distinct elements share a hash: building that set would take quadratic time (ints are
    easy to collide: hash(k * (2**61 - 1)) == 0). A set or dict the candidate really built never has them."""
    return len(items) <= 32 or len(items) - len(set(map(hash, items))) <= 16


def refuse():
    raise ValueError("a set or dict whose elements' hashes collide")
