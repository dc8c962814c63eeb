"""The fork server (stdlib only): judges one program at a time inside the sandbox and decides the verdict.

Per program: the zygote (a clean exec'd process that never sees a test) forks the candidate; this
process execs the trusted test and calls ``check`` with proxies to the candidate; afterwards every
process of the program is killed and reaped and the scratch dirs are emptied. Inside a sandbox this
server is PID 1 of its own PID namespace, so the candidate cannot kill it; it talks to the host over
its stdin/stdout only, which no child holds, and it is non-dumpable, so /proc and ptrace do not
reach it. Started as ``python3 -I -S -c BOOT SOURCE --scratch DIR [--wipe DIR] [--channel SOCKET]``; with
``--channel`` it talks to the host over that Unix socket instead of stdin/stdout (connected once, before any
candidate exists; the host then removes the path).
"""
import gc
import json
import os
import select
import shutil
import signal
import socket
import sys
import time

from sandbox.wire import HDR, read_exact, recv_frame, send_frame, write_all  # inline
from sandbox.candidate import prctl, zygote  # inline
from sandbox.judge import Channel, run_test  # inline

BOOT = "import sys;exec(compile(sys.argv[1],'<forkserver>','exec'),{'__name__':'__main__'})"
PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 4, 36
FATAL_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL, signal.SIGFPE}
POLL_S = 0.05       # longest gap between two reads of the candidate's CPU clock
MIN_POLL_S = 0.002  # shortest, when its budget is nearly spent
CLK_TCK = os.sysconf("SC_CLK_TCK")
CODE_CACHE = 512


class Stop(BaseException):
    """A CPU-time or wall-clock limit was hit while the judge waited for the candidate."""


def cpu_seconds_of(pid):
    """CPU time a live process has used so far (its POSIX CPU clock), 0 if it is gone."""
    try:
        return time.clock_gettime(((~pid) << 3) | 2)
    except OSError:
        return 0.0


def proc_stat(pid):
    """(state, ppid, pgrp, cpu seconds) of a process from /proc, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return fields[0].decode(), int(fields[1]), int(fields[2]), (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


class Watch:
    """Waits for the candidate's replies while enforcing the wall and CPU limits and draining its output."""

    def __init__(self, pid, out_r, deadline, cpu, cap):
        self.pid, self.out_r, self.deadline, self.cpu, self.cap = pid, out_r, deadline, cpu, cap
        self.output, self.stop, self.next_cpu_check = bytearray(), None, time.monotonic() + POLL_S

    def drain(self, timeout=0.0):
        while self.out_r is not None and select.select([self.out_r], [], [], timeout)[0]:
            data = os.read(self.out_r, 1 << 16)
            if not data:
                os.close(self.out_r)
                self.out_r = None
            elif len(self.output) < self.cap:
                self.output += data[: self.cap - len(self.output)]

    def wait(self, fd):
        while not self.stop:
            now = time.monotonic()
            if now >= self.deadline:
                self.stop = "wall-clock limit"
            elif now >= self.next_cpu_check:
                pid = self.pid()
                used = cpu_seconds_of(pid) if pid else 0.0
                if used > self.cpu:
                    self.stop = "CPU-time limit"
                # one thread cannot spend the rest of its budget sooner than that much wall time
                self.next_cpu_check = now + min(POLL_S, max(MIN_POLL_S, self.cpu - used))
            if self.stop:
                break
            fds = [fd] if self.out_r is None else [fd, self.out_r]
            ready = select.select(fds, [], [], max(0.0, min(self.next_cpu_check, self.deadline) - now))[0]
            if self.out_r in ready:
                self.drain()
            if fd in ready:
                return
        raise Stop(self.stop)


class Server:
    """One sandbox's fork server."""

    def __init__(self, source, scratch, wipe, channel=None):
        self.source, self.scratch, self.wipe = source, scratch, wipe
        self.pid = os.getpid()
        self.is_init = self.pid == 1
        if channel:   # a Unix socket the host listens on for us alone (docker: no engine in the data path)
            host = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            host.connect(channel)
            self.host_in = self.host_out = host.detach()
        else:
            self.host_in, self.host_out = os.dup(0), os.dup(1)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        os.close(devnull)
        prctl(PR_SET_DUMPABLE, 0)
        if not self.is_init:
            prctl(PR_SET_CHILD_SUBREAPER, 1)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(sig, signal.SIG_DFL)  # as PID 1, default-action signals from inside are dropped
        self.zygote_pid, self.ctrl, self.codes, self.reaped, self.pid_now, self.job = None, None, {}, {}, None, 0

    def spawn_zygote(self):
        ours, theirs = (s.detach() for s in socket.socketpair())
        argv = [sys.executable, "-I", "-S", "-c", BOOT, self.source, "--zygote"]
        self.zygote_pid = os.posix_spawn(sys.executable, argv, dict(os.environ),
                                         file_actions=[(os.POSIX_SPAWN_DUP2, theirs, 3)])
        os.close(theirs)
        self.ctrl = ours

    def drop_zygote(self):
        if self.zygote_pid:
            try:
                os.kill(self.zygote_pid, signal.SIGKILL)
                os.waitpid(self.zygote_pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        if self.ctrl is not None:
            os.close(self.ctrl)
        self.zygote_pid, self.ctrl = None, None

    def serve(self):
        self.spawn_zygote()
        send_frame(self.host_out, {"ready": True, "pid": self.pid, "uid": os.getuid(),
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

    def test_code(self, text):
        code = self.codes.get(text)
        if code is None:
            if len(self.codes) >= CODE_CACHE:
                self.codes.clear()
            code = self.codes[text] = compile(text, "<test>", "exec")
        return code

    def start_candidate(self, req, candidate, work):
        """Hand the zygote a job (one message, two fds); returns (judge socket, output pipe) or raises OSError."""
        if self.zygote_pid is None:
            self.spawn_zygote()
        out_r, out_w = os.pipe()
        s_judge, s_cand = (s.detach() for s in socket.socketpair())
        keys = ("cpu_seconds", "memory_mb", "file_size_mb", "open_files", "processes")
        self.job, self.pid_now = self.job + 1, None
        data = json.dumps(dict({k: req[k] for k in keys}, candidate=candidate, work=work, job=self.job)).encode()
        try:
            with socket.socket(fileno=os.dup(self.ctrl)) as ctrl:
                sent = socket.send_fds(ctrl, [HDR.pack(len(data)) + data], [s_cand, out_w])
            frame = HDR.pack(len(data)) + data
            if sent < len(frame):
                write_all(self.ctrl, frame[sent:])
        except OSError:
            for fd in (out_r, s_judge):
                os.close(fd)
            self.drop_zygote()
            raise OSError("the zygote died")
        finally:
            os.close(s_cand)
            os.close(out_w)
        return s_judge, out_r

    def revive_zygote(self):
        """Replace a zygote the candidate killed; wake one it stopped."""
        if self.zygote_pid is None:
            self.spawn_zygote()
        else:
            try:
                os.kill(self.zygote_pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def zygote_news(self, timeout=0.0):
        """Read what the zygote has reported (the new candidate's pid, ended candidates); False if it is gone."""
        while self.ctrl is not None and select.select([self.ctrl], [], [], timeout)[0]:
            try:
                msg = recv_frame(self.ctrl)
            except (EOFError, OSError, ValueError):
                self.drop_zygote()
                return False
            if "pid" in msg and msg.get("job") == self.job:   # a late report of an earlier job is ignored
                self.pid_now = msg["pid"]
            elif "exit" in msg:
                self.reaped[msg["exit"]] = (msg["status"], msg["cpu_s"])
            timeout = 0.0
        return self.ctrl is not None

    def candidate_pid(self, timeout=0.0):
        """The current candidate's pid once the zygote has reported it (None before)."""
        end = time.monotonic() + timeout
        while self.pid_now is None and self.zygote_news(max(0.0, end - time.monotonic())):
            if time.monotonic() >= end:
                break
        return self.pid_now

    def candidate_end(self, pid, timeout):
        """How the candidate ended: (wait status, cpu s); None if it is still running after ``timeout`` s."""
        end = time.monotonic() + timeout
        while pid not in self.reaped:
            self.reap()
            remaining = end - time.monotonic()
            if pid in self.reaped or remaining <= 0 or not self.zygote_news(min(remaining, 0.01)):
                break
        return self.reaped.pop(pid, None)

    def run(self, req, candidate):
        start, judge_cpu = time.monotonic(), time.process_time()
        cpu, wall = float(req["cpu_seconds"]), float(req["wall_seconds"])
        work = os.path.join(self.scratch, "work")
        os.mkdir(work, 0o700)
        test = read_exact(self.host_in, req["test_len"]).decode()
        try:
            s_judge, out_r = self.start_candidate(req, candidate, work)
        except OSError as exc:
            self.clean()
            return {"id": req["id"], "status": "sandbox error", "detail": str(exc), "duration_s": 0.0,
                    "cpu_s": 0.0, "output": "", "damaged": True}
        watch = Watch(self.candidate_pid, out_r, start + wall, cpu, req["output_bytes"])
        channel = Channel(s_judge, watch.wait)
        try:
            error = run_test(self.test_code(test), req["entry_point"], channel)
        except Stop:
            pass
        if watch.stop:   # even if the test swallowed the Stop and returned
            error = ("Stop", watch.stop)
        judge_cpu = time.process_time() - judge_cpu
        os.close(s_judge)
        pid = self.candidate_pid(5.0)
        end = None
        if pid and watch.stop is None and type(channel.fatal).__name__ == "CandidateDied":
            end = self.candidate_end(pid, 0.3)
        used = cpu_seconds_of(pid) if pid and end is None else 0.0
        clean_kill = self.kill_all(pid)
        status, detail = classify(error, watch.stop, end, end is None, cpu)
        watch.drain(0.0)
        if watch.out_r is not None:
            os.close(watch.out_r)
        damaged = not (self.clean() and clean_kill)
        self.revive_zygote()
        used = end[1] if end else used
        return {"id": req["id"], "status": status, "detail": detail, "duration_s": time.monotonic() - start,
                "cpu_s": used + judge_cpu, "calls": channel.calls,
                "output": watch.output.decode("utf-8", "replace"), "damaged": damaged}

    def program_processes(self, pid):
        """Live processes of the current program: inside a sandbox everything but us and the zygote."""
        found = []
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) not in (self.pid, self.zygote_pid):
                stat = proc_stat(name)
                if stat and stat[0] not in "ZX" and (self.is_init or stat[2] == pid or stat[1] == self.pid):
                    found.append(int(name))
        return found

    def reap(self):
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.zygote_pid:
                os.close(self.ctrl)
                self.zygote_pid, self.ctrl = None, None
            self.reaped[pid] = (status, usage.ru_utime + usage.ru_stime)

    def kill_all(self, pid):
        """SIGKILL every process of the program, rescanning until no new one appears; False if that never ends.

        A process with SIGKILL pending runs no more user code and cannot fork. The lone candidate is left to
        die and be reaped by the zygote; when there were more (forks, orphans), we wait for all to be gone."""
        killed = set()
        for _ in range(1000):
            if not self.is_init and pid:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            victims = [v for v in self.program_processes(pid) if v not in killed]
            if not victims:
                break
            for victim in victims:
                try:
                    os.kill(victim, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                killed.add(victim)
        else:
            return False
        end = time.monotonic() + 5.0
        while len(killed - {pid}) and self.program_processes(pid) and time.monotonic() < end:
            self.reap()
            time.sleep(0.001)
        self.reap()
        if len(self.reaped) > 256:
            self.reaped.clear()
        return not (len(killed - {pid}) and self.program_processes(pid))

    def clean(self):
        """Empty the scratch dirs; False if something could not be removed (the sandbox is then replaced)."""
        try:
            os.rmdir(os.path.join(self.scratch, "work"))   # the usual case: the candidate wrote nothing
            if not any(os.scandir(self.scratch)) and not any(any(os.scandir(d)) for d in self.wipe):
                return True
        except OSError:
            pass
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


def classify(error, stop, end, killed_by_us, cpu):
    """The status, from what the trusted judge saw and how the candidate process ended."""
    if error is None:
        return "passed", ""
    if stop:
        return "timed out", stop
    name, msg = error
    if name == "MemoryError" or "MemoryError" in msg[:80]:
        return "out of memory", f"{name}: {msg}"
    if name == "CandidateDied":
        if end is None or killed_by_us:
            return "failed", "the candidate closed its channel before check() finished"
        status, used = end
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if sig == signal.SIGXCPU or (sig == signal.SIGKILL and used >= cpu - 0.05):
                return "timed out", "CPU-time limit"
            return "crashed", f"candidate killed by {signal.Signals(sig).name}"
        return "failed", f"candidate exited with code {os.WEXITSTATUS(status)} before check() finished"
    return "failed", f"{name}: {msg}"


def main(argv):
    if argv[1:2] == ["--zygote"]:
        zygote(3)
        return
    scratch, wipe, channel, args = "/tmp", [], None, list(argv[1:])
    while args:
        flag = args.pop(0)
        if flag == "--scratch":
            scratch = args.pop(0)
        elif flag == "--wipe":
            wipe.append(args.pop(0))
        elif flag == "--channel":
            channel = args.pop(0)
    Server(argv[0], scratch, wipe, channel).serve()


if __name__ == "__main__":
    main(sys.argv[1:])
