"""Code that runs inside the sandbox (stdlib only): framing, the plain-data codec, the candidate and judge processes.

Threat model (see docs/sandbox.md): candidate code is hostile and may run arbitrary Python.
It never shares a process with the test. Per program the fork server forks two children:

* the *candidate* process U (forked before the test bytes are read, so the test is never in its
  memory) runs the candidate source and then answers remote calls over a socket;
* the *judge* process T (trusted) execs the test; names the test does not define resolve to
  proxies whose calls go to U. Only plain data (None, bool, int, float, complex, str, bytes,
  list, tuple, dict, set, frozenset) crosses back, rebuilt by T from builtins, so lying
  ``__eq__``, trace hooks, patched builtins or ``sys.exit`` in U cannot bend T's comparisons.
"""
import builtins
import json
import os
import struct

HDR = struct.Struct("!I")
MAX_FRAME = 64 * 1024 * 1024


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


# ---- plain-data codec: U encodes (untrusted), T decodes into builtins only ----------------------
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


# ---- candidate process U -------------------------------------------------------------------------
def builtin_exception_name(exc):
    for cls in type(exc).__mro__:
        if getattr(builtins, cls.__name__, None) is cls:
            return cls.__name__
    return "Exception"


def serve_candidate(sock, source):
    """Run the candidate source, then answer the judge's requests until it hangs up."""
    g, load_error = {}, None
    try:
        exec(compile(source, "<candidate>", "exec"), g)
    except BaseException as exc:  # noqa: BLE001 - everything the candidate raises is a fail
        load_error = [builtin_exception_name(exc), str(exc)[:500]]
    while True:
        try:
            req = recv_frame(sock)
        except EOFError:
            os._exit(0)
        try:
            if load_error:
                resp = {"load_error": load_error}
            elif req["op"] == "get":
                resp = describe(g, req["name"])
            else:
                result = g[req["name"]](*decode(req["args"]), **decode(req["kwargs"]))
                resp = {"ok": encode(result)}
        except BaseException as exc:  # noqa: BLE001
            resp = {"exc": [builtin_exception_name(exc), str(exc)[:500]]}
        send_frame(sock, resp)


def describe(g, name):
    if name not in g:
        return {"missing": True}
    value = g[name]
    if type(value).__name__ == "module":
        return {"module": value.__name__}
    if callable(value):
        return {"callable": True}
    return {"value": encode(value)}


# ---- judge process T -----------------------------------------------------------------------------
class CandidateAborted(BaseException):
    """The candidate raised SystemExit/KeyboardInterrupt or failed to load; tests may not swallow it."""


class CandidateDied(BaseException):
    """The candidate process went away in the middle of a call."""


class BoundaryError(BaseException):
    """The test passed the candidate a value that is not plain data."""


def decode_reply(resp, key):
    try:
        return decode(resp[key])
    except Exception as exc:  # noqa: BLE001 - a malformed reply must not look like a catchable error
        raise CandidateAborted(f"malformed reply from the candidate: {exc!r}") from None


class RemoteError(Exception):
    """An exception of a non-builtin type raised by candidate code."""


def parse_reply(resp):
    if type(resp) is not dict:
        raise ValueError
    for kind in ("load_error", "exc"):
        if kind in resp:
            name, msg = resp[kind]
            return kind, str(name), str(msg)
    return "ok", "", ""


class Channel:
    """The judge's end of the socket to the candidate process."""

    def __init__(self, fd):
        self.fd = fd

    def ask(self, req):
        try:
            send_frame(self.fd, req)
            resp = recv_frame(self.fd)
        except (EOFError, OSError) as exc:
            raise CandidateDied(str(exc)) from None
        try:
            kind, name, msg = parse_reply(resp)
        except Exception:  # noqa: BLE001
            raise CandidateAborted("malformed reply from the candidate") from None
        if kind == "load_error":
            raise CandidateAborted(f"candidate failed to load: {name}: {msg}")
        if kind == "exc":
            cls = getattr(builtins, name, None)
            if isinstance(cls, type) and issubclass(cls, Exception):
                raise cls(msg)
            if name in ("SystemExit", "KeyboardInterrupt", "GeneratorExit", "BaseException"):
                raise CandidateAborted(f"{name}: {msg}")
            raise RemoteError(f"{name}: {msg}")
        return resp

    def call(self, name, args, kwargs):
        try:
            req = {"op": "call", "name": name, "args": encode(list(args)), "kwargs": encode(kwargs)}
        except TypeError as exc:
            raise BoundaryError(str(exc)) from None
        return decode_reply(self.ask(req), "ok")


class RemoteFunction:
    """A callable that runs the candidate's function of that name in the candidate process."""

    __slots__ = ("name", "channel")

    def __init__(self, name, channel):
        self.name, self.channel = name, channel

    def __call__(self, *args, **kwargs):
        return self.channel.call(self.name, args, kwargs)

    def __repr__(self):
        return f"<candidate function {self.name}>"


class TestGlobals(dict):
    """Globals of the test: names the test does not define come from the candidate, as proxies or data."""

    def __init__(self, channel):
        super().__init__(__builtins__=builtins, __name__="__test__")
        self.channel = channel

    def __missing__(self, name):
        if hasattr(builtins, name):
            raise KeyError(name)
        resp = self.channel.ask({"op": "get", "name": name})
        if resp.get("missing"):
            raise KeyError(name)
        if resp.get("callable"):
            value = RemoteFunction(name, self.channel)
        elif "module" in resp and resp["module"] == name:
            value = __import__(name)
        elif "value" in resp:
            value = decode_reply(resp, "value")
        else:
            raise KeyError(name)
        self[name] = value
        return value


def judge(sock, test_source, entry_point, verdict_fd):
    """Exec the test, call check(candidate); write the verdict to the pipe only U never had."""
    try:
        g = TestGlobals(Channel(sock))
        exec(compile(test_source, "<test>", "exec"), g)
        if not dict.__contains__(g, "check"):
            raise ValueError("the test defines no check()")
        check = dict.__getitem__(g, "check")
        check(g[entry_point])
        verdict = {"verdict": "passed"}
    except BaseException as exc:  # noqa: BLE001
        verdict = {"verdict": "failed", "error": type(exc).__name__, "msg": str(exc)[:500]}
    try:
        send_frame(verdict_fd, verdict)
    finally:
        os._exit(0)
