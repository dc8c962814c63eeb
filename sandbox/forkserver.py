"""The fork server (stdlib only): judges one program at a time inside the sandbox and decides the verdict.

Per program: this process compiles the candidate into a memfd; the zygote (a clean exec'd process that
never sees a test or a candidate's text) forks the candidate, which loads it; this process execs the
trusted prompt and test and calls ``check`` with a proxy to the candidate's entry point, charging all the
program's processes and its own work to the CPU limit; afterwards every process of the program is killed
and reaped and the scratch dirs are emptied. Inside a sandbox this
server is PID 1 of its own PID namespace, so the candidate cannot kill it; it talks to the host over
its stdin/stdout only, which no child holds, and it is non-dumpable, so /proc and ptrace do not
reach it. Started as ``python3 -I -S -c BOOT SOURCE --scratch DIR [--wipe DIR] [--channel SOCKET]``; with
``--channel`` it talks to the host over that Unix socket instead of stdin/stdout (connected once, before any
candidate exists; the host then removes the path).
"""
import gc
import json
import marshal
import os
import select
import signal
import socket
import sys
import time

from sandbox.wire import HDR, read_exact, recv_frame, recv_frame_waiting, send_frame, wait_until, write_all  # inline
from sandbox.candidate import prctl, zygote  # inline
from sandbox.judge import Channel, run_test  # inline
from sandbox.watch import JudgeTimer, Stop, Watch, classify, cpu_seconds_of, proc_stat  # inline
from sandbox.scratch import empty_dir, is_empty, restore_mode  # inline

BOOT = "import sys;exec(compile(sys.argv[1],'<forkserver>','exec'),{'__name__':'__main__'})"
PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 4, 36
CODE_CACHE = 512
ZYGOTE_REPLY_S = 5.0   # a zygote silent mid-frame this long is replaced
SERVER_COMPILE_MAX = 256 << 10   # candidate bytes compiled here (on the program's CPU); longer: in the child


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
        self.spent = 0.0   # CPU of the current program's processes that have been reaped
        self.ctrl_buffer = bytearray()   # bytes from the zygote after its last whole frame
        self.modes = {root: os.stat(root).st_mode & 0o7777 for root in [scratch, *wipe]}

    def spawn_zygote(self):
        ours, theirs = (s.detach() for s in socket.socketpair())
        argv = [sys.executable, "-I", "-S", "-c", BOOT, self.source, "--zygote"]
        self.zygote_pid = os.posix_spawn(sys.executable, argv, dict(os.environ),
                                         file_actions=[(os.POSIX_SPAWN_DUP2, theirs, 3)])
        os.close(theirs)
        self.ctrl, self.ctrl_buffer = ours, bytearray()

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
            candidate = read_exact(self.host_in, req["candidate_len"])   # bytes: the zygote never decodes it
            test = read_exact(self.host_in, req["test_len"]).decode("utf-8", "surrogatepass")
            prompt = None
            if req.get("prompt_len", -1) >= 0:
                prompt = read_exact(self.host_in, req["prompt_len"]).decode("utf-8", "surrogatepass")
            try:
                result = self.run(req, candidate, test, prompt)
            except Exception as exc:  # noqa: BLE001 - our own bug: say so (not the candidate's doing), then exit
                result = {"id": req.get("id"), "status": "sandbox error", "detail": f"fork server: {exc!r}"[:500],
                          "duration_s": 0.0, "cpu_s": 0.0, "output": "", "damaged": True}
            send_frame(self.host_out, result)
            if result.get("damaged"):
                return

    def compiled(self, text, name):
        """Compiled trusted text (cached), or the SyntaxError; a prompt ending in a bare ``def`` line gets a body."""
        code = self.codes.get((name, text))
        if code is None:
            if len(self.codes) >= CODE_CACHE:
                self.codes.clear()
            try:
                code = compile(text, name, "exec")
            except SyntaxError as exc:
                code = exc
                if name == "<prompt>":
                    try:
                        code = compile(text + "\n    pass\n", name, "exec")
                    except SyntaxError:
                        pass
            self.codes[(name, text)] = code
        return code

    def start_candidate(self, req, candidate, work):
        """Hand the zygote a job (one message, three fds: judge socket, output pipe, the source in a memfd);
        returns (judge socket, output pipe) or raises OSError."""
        if self.zygote_pid is None:
            self.spawn_zygote()
        out_r, out_w = os.pipe()
        s_judge, s_cand = (s.detach() for s in socket.socketpair())
        source = os.memfd_create("candidate", os.MFD_CLOEXEC)
        write_all(source, candidate_payload(candidate))
        keys = ("cpu_seconds", "memory_mb", "file_size_mb", "open_files", "processes")
        self.job, self.pid_now, self.spent = self.job + 1, None, 0.0
        data = json.dumps(dict({k: req[k] for k in keys}, work=work, job=self.job)).encode()
        try:
            with socket.socket(fileno=os.dup(self.ctrl)) as ctrl:
                sent = socket.send_fds(ctrl, [HDR.pack(len(data)) + data], [s_cand, out_w, source])
            frame = HDR.pack(len(data)) + data
            if sent < len(frame):
                write_all(self.ctrl, frame[sent:])
        except OSError:
            for fd in (out_r, s_judge):
                os.close(fd)
            self.drop_zygote()
            raise OSError("the zygote died")
        finally:
            for fd in (s_cand, out_w, source):
                os.close(fd)
        return s_judge, out_r

    def revive_zygote(self):
        """Replace a zygote that died; wake one that was stopped (the candidate's filter forbids both)."""
        if self.zygote_pid is None:
            self.spawn_zygote()
        else:
            try:
                os.kill(self.zygote_pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def zygote_news(self, timeout=0.0):
        """Read what the zygote has reported (the new candidate's pid, ended candidates); False if it is gone."""
        while self.ctrl is not None and (whole_frame(self.ctrl_buffer) or
                                         select.select([self.ctrl], [], [], timeout)[0]):
            try:
                msg = recv_frame_waiting(self.ctrl, wait_until(time.monotonic() + ZYGOTE_REPLY_S), self.ctrl_buffer,
                                         1 << 16)
            except (EOFError, OSError, ValueError):
                self.drop_zygote()
                return False
            if "pid" in msg and msg.get("job") == self.job:   # a late report of an earlier job is ignored
                self.pid_now = msg["pid"]
            elif "exit" in msg:
                self.reaped[msg["exit"]] = (msg["status"], msg["cpu_s"])
                if msg["exit"] == self.pid_now:
                    self.spent += msg["cpu_s"]
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

    def run(self, req, candidate, test, prompt):
        """Judge one program; a zygote that died before forking it (not the program's doing) is replaced once."""
        for attempt in range(2):
            result = self.judge(req, candidate, test, prompt)
            if result is not None:
                return result
            self.drop_zygote()
        return {"id": req["id"], "status": "sandbox error", "detail": "the zygote died before forking the candidate",
                "duration_s": 0.0, "cpu_s": 0.0, "output": "", "damaged": True}

    def judge(self, req, candidate, test, prompt):
        start, judge_cpu = time.monotonic(), time.process_time()
        cpu, wall = float(req["cpu_seconds"]), float(req["wall_seconds"])
        work = os.path.join(self.scratch, "work")
        os.mkdir(work, 0o700)
        try:
            s_judge, out_r = self.start_candidate(req, candidate, work)
        except OSError:
            self.clean()
            return None
        watch = Watch(lambda: self.program_cpu() + time.process_time() - judge_cpu, out_r, start + wall, cpu,
                      req["output_bytes"])
        channel = Channel(s_judge, watch.wait)
        error = ("Stop", "CPU-time limit")
        with JudgeTimer(watch):
            error = run_test(self.compiled(test, "<test>"), req["entry_point"], channel,
                             None if prompt is None else self.compiled(prompt, "<prompt>"))
        judge_cpu = time.process_time() - judge_cpu
        os.close(s_judge)
        pid = self.candidate_pid(5.0)
        if pid is None and self.zygote_pid is None:   # the zygote died before it forked: nothing of it ran
            self.kill_all(None)
            watch.drain(0.0)
            if watch.out_r is not None:
                os.close(watch.out_r)
            self.clean()
            return None
        end = None
        if pid and watch.stop is None and type(channel.fatal).__name__ == "CandidateDied":
            end = self.candidate_end(pid, 0.3)
        self.zygote_news(0.0)
        snapshot = self.scan(pid)   # one /proc scan for the CPU account and the first round of the kill
        used = self.program_cpu(snapshot)
        clean_kill = self.kill_all(pid, snapshot)
        used = max(used, end[1] if end else 0.0, self.spent) + judge_cpu
        if watch.stop is None and used > cpu:
            watch.stop = "CPU-time limit"   # spent between two polls, or by the judge after the last one
        if watch.stop:   # even if the test swallowed the Stop and returned
            error = ("Stop", watch.stop)
        status, detail = classify(error, watch.stop, end, end is None, cpu, channel.reported_oom)
        watch.drain(0.0)
        if watch.out_r is not None:
            os.close(watch.out_r)
        damaged = not (self.clean() and clean_kill)
        self.revive_zygote()
        return {"id": req["id"], "status": status, "detail": detail, "duration_s": time.monotonic() - start,
                "cpu_s": used, "calls": channel.calls,
                "output": watch.output.decode("utf-8", "replace"), "damaged": damaged}

    def scan(self, pid):
        """(pid, stat) of the current program's processes, zombies included: inside a sandbox everything but
        us and the zygote; without one, the candidate's process group and orphans we adopted."""
        found = []
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) not in (self.pid, self.zygote_pid):
                stat = proc_stat(name)
                if stat and (self.is_init or (pid and stat[2] == pid) or stat[1] == self.pid):
                    found.append((int(name), stat))
        return found

    def program_processes(self, pid):
        return [p for p, stat in self.scan(pid) if stat[0] not in "ZX"]

    def program_cpu(self, snapshot=None):
        """CPU the current program has used so far: each process (alive or zombie) with the children it reaped,
        plus the processes of it that the zygote or we reaped."""
        pid = self.candidate_pid()   # reads the zygote's news: the candidate's pid, candidates that ended
        total = self.spent
        for p, stat in self.scan(pid) if snapshot is None else snapshot:
            if stat[1] == self.zygote_pid and p != pid:
                continue   # an earlier candidate, killed, that the zygote has not reaped yet: not this program's
            own = max(stat[3], cpu_seconds_of(p)) if p == pid and stat[0] not in "ZX" else stat[3]
            total += own + stat[4]
        return total

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
            else:
                self.spent += usage.ru_utime + usage.ru_stime   # an orphan of the program
            self.reaped[pid] = (status, usage.ru_utime + usage.ru_stime)

    def kill_all(self, pid, snapshot=()):
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
            if snapshot:
                victims, snapshot = [p for p, stat in snapshot if stat[0] not in "ZX"], ()
            else:
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
            if is_empty(self.scratch) and all(is_empty(d) for d in self.wipe):
                return True
        except OSError:
            pass
        ok = True
        for root, mode in self.modes.items():
            ok = restore_mode(root, mode) and empty_dir(root) and ok
        return ok


def whole_frame(buffer):
    return len(buffer) >= HDR.size and len(buffer) >= HDR.size + HDR.unpack_from(buffer)[0]


def candidate_payload(candidate):
    """What the candidate process loads: its code compiled here (compiling runs none of it; here, because a
    fresh fork pays for every page compile() touches) or, past SERVER_COMPILE_MAX or on a compile error, its text."""
    if len(candidate) <= SERVER_COMPILE_MAX:
        try:
            return b"C" + marshal.dumps(compile(candidate.decode("utf-8", "surrogatepass"), "<candidate>", "exec"))
        except (SyntaxError, ValueError, UnicodeError, MemoryError, RecursionError, OverflowError):
            pass
    return b"S" + candidate


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
