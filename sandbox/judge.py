"""The judge inside the sandbox (stdlib only): runs the trusted test against a candidate in another process.

The test is exec'd here, in the fork server; no candidate code ever runs in this process. Names the
test uses but does not define are looked up in the candidate process: functions become proxies whose
calls travel over a socket, values come back as plain data rebuilt here from builtins. ``check``
is only ever taken from the test itself. "Passed" means: ``check(candidate)`` returned here.
"""
import builtins

from sandbox.wire import HDR, decode, encode, recv_frame, send_frame  # inline


class CandidateAborted(BaseException):
    """The candidate raised SystemExit/KeyboardInterrupt, failed to load or sent garbage; tests may not swallow it."""


class CandidateDied(BaseException):
    """The candidate process went away or closed its channel in the middle of a call."""


class BoundaryError(BaseException):
    """The test passed the candidate a value that is not plain data."""


class RemoteError(Exception):
    """An exception of a non-builtin type raised by candidate code."""


ABORTS = ("SystemExit", "KeyboardInterrupt", "GeneratorExit", "BaseException")


def parse_reply(resp):
    if type(resp) is not dict:
        raise ValueError
    for kind in ("load_error", "exc"):
        if kind in resp:
            name, msg = resp[kind]
            return kind, str(name), str(msg)
    return "ok", "", ""


class Channel:
    """The judge's end of the socket to the candidate process; ``wait(fd)`` blocks until fd is readable or a limit hits."""

    def __init__(self, fd, wait):
        self.fd, self.wait = fd, wait
        self.calls = 0
        self.fatal = None  # first event that rules out a pass even if the test swallows the exception

    def ask(self, req):
        self.calls += 1
        try:
            return self._ask(req)
        except (CandidateAborted, CandidateDied) as exc:
            self.fatal = self.fatal or exc
            raise

    def _ask(self, req):
        try:
            send_frame(self.fd, req)
            self.wait(self.fd)
            resp = recv_frame(self.fd)
        except (EOFError, OSError) as exc:
            raise CandidateDied(str(exc) or type(exc).__name__) from None
        except ValueError:
            raise CandidateAborted("malformed reply from the candidate") from None
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
            if name in ABORTS:
                raise CandidateAborted(f"{name}: {msg}")
            raise RemoteError(f"{name}: {msg}")
        return resp

    def value(self, resp, key):
        try:
            return decode(resp[key])
        except Exception as exc:  # noqa: BLE001 - a malformed reply must not look like a catchable error
            self.fatal = self.fatal or CandidateAborted(f"malformed value from the candidate: {exc!r}")
            raise self.fatal from None

    def call(self, name, args, kwargs):
        try:
            req = {"op": "call", "name": name, "args": encode(list(args)), "kwargs": encode(kwargs)}
        except TypeError as exc:
            self.fatal = self.fatal or BoundaryError(str(exc))
            raise self.fatal from None
        return self.value(self.ask(req), "ok")


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
        elif resp.get("module") == name:
            value = __import__(name)
        elif "value" in resp:
            value = self.channel.value(resp, "value")
        else:
            raise KeyError(name)
        self[name] = value
        return value


def run_test(code, entry_point, channel):
    """Exec the compiled test and call check(candidate); returns None if it returned, else (error type, message)."""
    try:
        g = TestGlobals(channel)
        exec(code, g)
        if not dict.__contains__(g, "check"):
            return "ValueError", "the test defines no check()"
        check = dict.__getitem__(g, "check")
        check(g[entry_point])
        if channel.fatal is not None:
            return type(channel.fatal).__name__, str(channel.fatal)[:500]
        return None
    except BaseException as exc:  # noqa: BLE001 - anything but a return is not a pass
        if type(exc).__name__ == "Stop":
            raise
        return type(exc).__name__, str(exc)[:500]
