"""The fork server (stdlib only): forks a candidate and a judge per program and decides the verdict.

Inside a sandbox it is PID 1 of its own PID namespace, so the candidate cannot kill it, and
``kill(-1)`` after each program removes every other process. It talks to the host over its
stdin/stdout only; children never hold those fds, and the server is non-dumpable, so nothing
in the sandbox can reach them through /proc. Run as ``python3 -I -S -c SOURCE --scratch DIR``;
``sandbox.bootstrap.server_source()`` builds SOURCE from this file and ``sandbox/judge.py``.
"""
import ctypes
import gc
import json
import math
import os
import resource
import select
import shutil
import signal
import socket
import sys
import time

from sandbox.judge import HDR, judge, read_exact, read_into, recv_frame, send_frame, serve_candidate  # inline

PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 4, 36
FATAL_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL, signal.SIGFPE}
POLL_S = 0.05
CLK_TCK = os.sysconf("SC_CLK_TCK")


def prctl(option, value):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def cpu_seconds_of(pid):
    """User+system CPU time of a live process, from /proc; 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def set_limits(req, cpu):
    """rlimits for one child: CPU seconds (soft raises SIGXCPU, hard kills), memory, files, processes."""
    whole = max(1, math.ceil(cpu))
    resource.setrlimit(resource.RLIMIT_CPU, (whole, whole + 1))
    memory = req["memory_mb"] << 20
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    fsize = req["file_size_mb"] << 20
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_NOFILE, (req["open_files"], req["open_files"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if req.get("processes"):
        resource.setrlimit(resource.RLIMIT_NPROC, (req["processes"], req["processes"]))


def become_child(keep, out_w, work):
    """Common start of both children: own stdio, only the fds in ``keep`` (moved to 3, 4, ...)."""
    for i, fd in enumerate(keep):
        os.dup2(fd, 10 + i, inheritable=False)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out_w, 1)
    os.dup2(out_w, 2)
    for i in range(len(keep)):
        os.dup2(10 + i, 3 + i, inheritable=False)
    os.closerange(3 + len(keep), 1 << 16)
    os.chdir(work)
    return list(range(3, 3 + len(keep)))


class Server:
    """One sandbox's fork server."""

    def __init__(self, scratch, wipe):
        self.scratch, self.wipe = scratch, wipe
        self.is_init = os.getpid() == 1
        self.host_in, self.host_out = os.dup(0), os.dup(1)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        os.close(devnull)
        self.buf = bytearray(1 << 16)
        prctl(PR_SET_DUMPABLE, 0)
        if not self.is_init:
            prctl(PR_SET_CHILD_SUBREAPER, 1)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(sig, signal.SIG_DFL)  # as PID 1, default-action signals from inside are dropped

    def serve(self):
        send_frame(self.host_out, {"ready": True, "pid": os.getpid(), "uid": os.getuid(),
                                   "python": sys.version.split()[0]})
        gc.freeze()
        while True:
            try:
                req = recv_frame(self.host_in)
            except EOFError:
                return
            candidate = read_exact(self.host_in, req["candidate_len"]).decode()
            result = self.run(req, candidate)
            send_frame(self.host_out, result)
            if result.get("damaged"):
                return

    def run(self, req, candidate):
        start = time.monotonic()
        cpu, wall = float(req["cpu_seconds"]), float(req["wall_seconds"])
        work = os.path.join(self.scratch, "work")
        os.mkdir(work, 0o700)
        out_r, out_w = os.pipe()
        s_judge, s_cand = (s.detach() for s in socket.socketpair())
        u = os.fork()
        if u == 0:  # candidate process: forked before the test is read
            try:
                (sock,) = become_child([s_cand], out_w, work)
                os.setpgid(0, 0)
                set_limits(req, cpu)
                serve_candidate(sock, candidate)
            finally:
                os._exit(70)
        if not self.is_init:
            os.setpgid(u, u)
        os.close(s_cand)
        n = req["test_len"]
        if n > len(self.buf):
            self.buf[:] = bytes(len(self.buf))
            self.buf = bytearray(n)
        read_into(self.host_in, self.buf, n)
        v_r, v_w = os.pipe()
        t = os.fork()
        if t == 0:  # judge process: trusted, holds the verdict pipe
            try:
                sock, verdict_fd = become_child([s_judge, v_w], out_w, work)
                if not self.is_init:
                    os.setpgid(0, u)
                set_limits(dict(req, processes=0), cpu + 1)
                judge(sock, bytes(self.buf[:n]).decode(), req["entry_point"], verdict_fd)
            finally:
                os._exit(70)
        if not self.is_init:
            try:
                os.setpgid(t, u)
            except OSError:
                pass
        memoryview(self.buf)[:n] = bytes(n)  # the test never stays in server memory
        for fd in (s_judge, v_w, out_w):
            os.close(fd)
        verdict, output, stop = self.wait(u, v_r, out_r, start, cpu, wall, req["output_bytes"])
        u_status = self.wait_exit(u, 0.5) if verdict and verdict.get("error") == "CandidateDied" else None
        statuses = self.kill_all(u, t)
        if u_status is None:
            u_status = statuses.get(u, (0, 0.0))
            if verdict and verdict.get("error") == "CandidateDied" and u_status[1] < cpu:
                verdict = dict(verdict, error="CandidateHungUp", msg="the candidate closed its channel")
        status, detail = classify(verdict, stop, u_status, statuses.get(t, (0, 0.0)), cpu)
        damaged = not self.clean(work)
        return {"id": req["id"], "status": status, "detail": detail, "duration_s": time.monotonic() - start,
                "cpu_s": u_status[1] + statuses.get(t, (0, 0.0))[1],
                "output": output.decode("utf-8", "replace"), "damaged": damaged}

    def wait(self, u, v_r, out_r, start, cpu, wall, cap):
        """Collect output until the judge closes its pipe or a limit is hit; returns (verdict, output, stop)."""
        fds, vbuf, output, stop = [v_r, out_r], bytearray(), bytearray(), None
        deadline = start + wall
        while v_r in fds:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                stop = "wall-clock limit"
                break
            ready, _, _ = select.select(fds, [], [], min(POLL_S, remaining))
            for fd in ready:
                data = os.read(fd, 1 << 16)
                if not data:
                    fds.remove(fd)
                elif fd == v_r:
                    vbuf += data
                elif len(output) < cap:
                    output += data[: cap - len(output)]
            if not ready and cpu_seconds_of(u) > cpu:
                stop = "CPU-time limit"
                break
        os.close(v_r)
        os.close(out_r)
        verdict = None
        if len(vbuf) >= HDR.size and stop is None:
            verdict = json.loads(bytes(vbuf[HDR.size:]))
        return verdict, output, stop

    def wait_exit(self, pid, timeout):
        """Wait up to ``timeout`` s for pid to exit on its own; (wait status, cpu s) or None."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            got, status, usage = os.wait4(pid, os.WNOHANG)
            if got:
                return status, usage.ru_utime + usage.ru_stime
            time.sleep(0.002)
        return None

    def kill_all(self, *pids):
        """Kill every process of this program (everything but us, inside a sandbox); reap them all."""
        statuses = {}
        for _ in range(1000):
            if self.is_init:
                try:
                    os.kill(-1, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            else:
                for pid in set(pids) | set(self.orphans()):
                    for kill in (os.killpg, os.kill):
                        try:
                            kill(pid, signal.SIGKILL)
                        except (ProcessLookupError, PermissionError):
                            pass
            try:
                pid, status, usage = os.wait4(-1, 0)
            except ChildProcessError:
                return statuses
            statuses[pid] = (status, usage.ru_utime + usage.ru_stime)
        return statuses

    def orphans(self):
        me = str(os.getpid()).encode()
        found = []
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    with open(f"/proc/{name}/stat", "rb") as f:
                        if f.read().rsplit(b")", 1)[1].split()[1] == me:
                            found.append(int(name))
                except (OSError, IndexError):
                    pass
        return found

    def clean(self, work):
        """Empty the scratch dirs; False if something could not be removed (the sandbox is then replaced)."""
        ok = True
        for root in [self.scratch, *self.wipe]:
            try:
                entries = [e.path for e in os.scandir(root)]
            except OSError:
                continue
            for path in entries:
                ok = remove(path) and ok
        return ok


def remove(path):
    def fix(func, p, _exc):
        os.chmod(os.path.dirname(p), 0o700)
        func(p)
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, 0o700)
            shutil.rmtree(path, onerror=fix)
        else:
            os.unlink(path)
        return True
    except OSError:
        return False


def classify(verdict, stop, u_status, t_status, cpu):
    """The verdict, from what the trusted judge said and how the processes ended."""
    if verdict is not None and verdict.get("verdict") == "passed":
        return "passed", ""
    if stop:
        return "timed out", stop
    error, msg = (verdict or {}).get("error"), (verdict or {}).get("msg", "")
    if error == "MemoryError" or "MemoryError" in msg[:60]:
        return "out of memory", f"{error}: {msg}"
    if verdict is None or error == "CandidateDied":
        who, (status, used) = ("candidate", u_status) if verdict else ("judge", t_status)
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if sig == signal.SIGXCPU or (sig == signal.SIGKILL and used >= min(cpu, math.ceil(cpu)) - 0.05):
                return "timed out", "CPU-time limit"
            return "crashed", f"{who} process killed by {signal.Signals(sig).name}"
        if os.WIFEXITED(status) and verdict is not None:
            return "failed", f"candidate exited with code {os.WEXITSTATUS(status)} before check() finished"
        return "crashed", f"{who} process ended without a verdict"
    return "failed", f"{error}: {msg}"


def main(argv):
    scratch, wipe = "/tmp", []
    args = list(argv)
    while args:
        flag = args.pop(0)
        if flag == "--scratch":
            scratch = args.pop(0)
        elif flag == "--wipe":
            wipe.append(args.pop(0))
    Server(scratch, wipe).serve()


if __name__ == "__main__":
    main(sys.argv[1:])
