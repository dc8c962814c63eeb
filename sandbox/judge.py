"""The judge inside the sandbox (stdlib only): runs the trusted test against a candidate in another process.

The test is exec'd here, in the fork server; no candidate code ever runs in this process. The prompt is
trusted text too: it is exec'd here first, so its helpers (HumanEval/32 ``poly``) are the prompt's own, and
only the entry point is looked up in the candidate process. It becomes a proxy whose calls travel over a
socket; values come back as plain data rebuilt here from builtins. ``check`` is only ever taken from the
test itself. "Passed" means: ``check(candidate)`` returned here. Every reply is read with the program's
limits running (a stall mid-frame times out) and under a size bound.
"""
import builtins

from sandbox.wire import decode, encode, recv_frame_waiting, send_frame  # inline


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
        self.calls, self.buffer = 0, bytearray()
        self.fatal = None  # first event that rules out a pass even if the test swallows the exception
        self.reported_oom = False   # the candidate process reported a MemoryError (its type, never its text)

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
            resp = recv_frame_waiting(self.fd, self.wait, self.buffer)
        except (EOFError, OSError) as exc:
            raise CandidateDied(str(exc) or type(exc).__name__) from None
        except (ValueError, RecursionError):
            raise CandidateAborted("malformed reply from the candidate") from None
        try:
            kind, name, msg = parse_reply(resp)
        except Exception:  # noqa: BLE001
            raise CandidateAborted("malformed reply from the candidate") from None
        self.reported_oom = self.reported_oom or name == "MemoryError"
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
    """Globals of the test: names neither the prompt nor the test defines come from the candidate.

    With the prompt given (``entry_point`` set), only the entry point is asked of the candidate; any other
    missing name may only be a module, imported here. Without it (bare programs), any name the candidate
    defines is looked up there, as proxies or data."""

    def __init__(self, channel, entry_point=None):
        super().__init__(__builtins__=builtins, __name__="__test__")
        self.channel, self.entry_point = channel, entry_point

    def __missing__(self, name):
        if hasattr(builtins, name):
            raise KeyError(name)
        if self.entry_point is not None:
            if name == self.entry_point:   # the prompt says it is a function: no round trip to ask
                value = self[name] = RemoteFunction(name, self.channel)
                return value
            try:
                value = __import__(name)
            except ImportError:
                raise KeyError(name) from None
            self[name] = value
            return value
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


HELPERS = {}


def uses_helpers(test, prompt, entry_point):
    """Whether the test names anything the prompt defines besides the entry point (cached per pair). If not,
    exec'ing the prompt is skipped: the names it would give are the entry point and modules, found anyway."""
    key = (test, prompt)
    if key not in HELPERS:
        if len(HELPERS) > 1024:
            HELPERS.clear()
        HELPERS[key] = bool((names_of(test) & set(prompt.co_names)) - {entry_point})
    return HELPERS[key]


def names_of(code):
    names, stack = set(), [code]
    while stack:
        c = stack.pop()
        names.update(c.co_names)
        stack.extend(k for k in c.co_consts if type(k) is type(c))
    return names


def run_test(code, entry_point, channel, prompt=None):
    """Exec the compiled prompt (if any) and test, call check(candidate); None if it returned, else (type, message)."""
    try:
        if isinstance(code, SyntaxError):
            raise code
        if isinstance(prompt, SyntaxError):
            prompt = None   # a prompt that is not a module on its own: names come from the candidate, as before
        g = TestGlobals(channel, entry_point if prompt is not None else None)
        if prompt is not None and uses_helpers(code, prompt, entry_point):
            exec(prompt, g)
            dict.pop(g, entry_point, None)   # the prompt's stub; the candidate's definition is looked up
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
