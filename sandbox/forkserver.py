"""The fork server (stdlib only): judges one program at a time inside the sandbox and decides the verdict.

Per program: this process compiles the candidate into a memfd; the zygote (a clean exec'd process that
never sees a test or a candidate's text) forks the candidate, which loads it; this process execs the
trusted prompt and test and calls ``check`` with a proxy to the candidate's entry point, charging all the
program's processes and its own work to the CPU limit; afterwards every process of the program is killed.
In a sandbox (``--fresh``), each program gets a fresh world (sandbox.world, sandbox.worlds): its own
namespaces, scratch dirs, uid and cgroups, so neither this process nor the zygote can be reached by it, and
nothing it leaves is seen by the next one; this process checks before each program that its own and
the zygote's limits and scheduling are as they were, and stops serving otherwise. It talks to the host over its
stdin/stdout, or over a Unix socket (``--channel``, docker: connected once, before any candidate exists; the host
then removes the path), which no child holds, and it is non-dumpable, so /proc and ptrace do not reach it.
Started as ``python3 -I -S -c BOOT SOURCE [--fresh FIRST_UID COUNT [--cgroup CTL=DIR]... [--hide DIR]...
[--headroom MB]] [--launch BASE COUNT] [--channel SOCKET] [--scratch DIR [--wipe DIR]...]``.
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
from sandbox.watch import JudgeTimer, Watch, classify  # inline
from sandbox.world import cover, prepare_sandbox  # inline
from sandbox.accounts import Cgroups, describe_change, trusted_state  # inline
from sandbox.worlds import FreshWorld, PlainWorld  # inline
from sandbox.launcher import launch  # inline

BOOT = "import sys;exec(compile(sys.argv[1],'<forkserver>','exec'),{'__name__':'__main__'})"
PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 4, 36
CODE_CACHE = 512
ZYGOTE_REPLY_S = 5.0   # a zygote silent mid-frame this long is replaced
SERVER_COMPILE_MAX = 256 << 10   # candidate bytes compiled here (on the program's CPU); longer: in the child


class Server:
    """One sandbox's fork server."""

    def __init__(self, source, options, host_fd=None):
        self.source = source
        self.pid = os.getpid()
        if host_fd is not None:   # a Unix socket the host listens on for us alone (docker: no engine in the data path)
            self.host_in = self.host_out = host_fd
        else:
            self.host_in, self.host_out = os.dup(0), os.dup(1)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        os.close(devnull)
        prctl(PR_SET_DUMPABLE, 0)
        if self.pid != 1:
            prctl(PR_SET_CHILD_SUBREAPER, 1)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(sig, signal.SIG_DFL)  # as PID 1, default-action signals from inside are dropped
        self.zygote_pid, self.ctrl, self.codes, self.reaped, self.pid_now, self.job = None, None, {}, {}, None, 0
        self.init_now = None   # PID 1 of the current program's namespace (killing it kills the program)
        self.spent = 0.0   # CPU of the current program's processes that have been reaped
        self.ctrl_buffer = bytearray()   # bytes from the zygote after its last whole frame
        self.zygote_config, self.zygote_fds = {"fresh": False, "joins": []}, []
        if options["fresh"]:
            cgroups = options["cgroups"]
            prepare_sandbox(list(cgroups.values()))
            accounts = Cgroups(cgroups) if cgroups else None
            for path in options["hide"]:   # the cgroup files are reached through fds from now on
                if os.path.isdir(path):
                    cover(path)
            first, count = options["fresh"]
            self.world = FreshWorld(self, first, count, accounts, options["headroom"])
            self.zygote_fds = accounts.join_fds if accounts else []
            self.zygote_config = {"fresh": True, "joins": list(range(4, 4 + len(self.zygote_fds)))}
        else:
            self.world = PlainWorld(self, options["scratch"], options["wipe"])
        self.trusted = {}   # the trusted processes' state once they are up (serve, spawn_zygote)

    def trusted_now(self):
        """The trusted processes' limits and scheduling now, and the server's open fds (a leak would poison)."""
        now = {"server": (trusted_state(self.pid), len(os.listdir("/proc/self/fd")))}
        if self.zygote_pid:
            try:
                now["zygote"] = (trusted_state(self.zygote_pid), 0)
            except (ProcessLookupError, PermissionError):
                pass
        return now

    def trusted_change(self):
        """How the trusted processes differ from when they started ('' if they do not)."""
        changes = []
        for who, now in self.trusted_now().items():
            then = self.trusted.get(who, now)
            if now != then:
                fds = f" open fds {then[1]} -> {now[1]}" if now[1] != then[1] else ""
                changes.append(f"{who}: {describe_change(then[0], now[0])}{fds}")
        return "; ".join(changes)

    def spawn_zygote(self):
        ours, theirs = (s.detach() for s in socket.socketpair())
        argv = [sys.executable, "-I", "-S", "-c", BOOT, self.source, "--zygote", json.dumps(self.zygote_config)]
        fds = [(os.POSIX_SPAWN_DUP2, fd, 4 + i) for i, fd in enumerate(self.zygote_fds)]
        self.zygote_pid = os.posix_spawn(sys.executable, argv, dict(os.environ),
                                         file_actions=[(os.POSIX_SPAWN_DUP2, theirs, 3), *fds])
        os.close(theirs)
        self.ctrl, self.ctrl_buffer = ours, bytearray()
        self.trusted["zygote"] = (trusted_state(self.zygote_pid), 0)

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
        self.trusted["server"] = self.trusted_now()["server"]
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

    def start_candidate(self, req, candidate, fields, fds):
        """Hand the zygote a job (one message; fds: judge socket, output pipe, the source in a memfd, the world's
        ``fds``); returns (judge socket, output pipe) or raises OSError."""
        if self.zygote_pid is None:
            self.spawn_zygote()
        out_r, out_w = os.pipe()
        s_judge, s_cand = (s.detach() for s in socket.socketpair())
        source = os.memfd_create("candidate", os.MFD_CLOEXEC)
        write_all(source, candidate_payload(candidate))
        keys = ("cpu_seconds", "memory_mb", "file_size_mb", "open_files", "processes")
        self.job, self.pid_now, self.init_now, self.spent = self.job + 1, None, None, 0.0
        data = json.dumps(dict({k: req[k] for k in keys}, job=self.job, **fields)).encode()
        try:
            with socket.socket(fileno=os.dup(self.ctrl)) as ctrl:
                sent = socket.send_fds(ctrl, [HDR.pack(len(data)) + data], [s_cand, out_w, source, *fds])
            frame = HDR.pack(len(data)) + data
            if sent < len(frame):
                write_all(self.ctrl, frame[sent:])
        except OSError:
            for fd in (out_r, s_judge):
                os.close(fd)
            self.drop_zygote()
            raise OSError("the zygote died")
        finally:
            for fd in (s_cand, out_w, source, *fds):
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
                self.pid_now, self.init_now = msg["pid"], msg.get("init")
            elif "exit" in msg:
                self.reaped[msg["exit"]] = (msg["status"], msg["cpu_s"])
                if msg["exit"] == self.pid_now or self.world.every_exit_is_the_programs:
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
        """Judge one program; a zygote that died before forking it (not the program's doing) is replaced once.
        Nothing is judged from a changed state: the trusted processes as they started, no earlier program left."""
        changed = self.trusted_change()
        for attempt in range(2 if not changed else 0):
            result = self.judge(req, candidate, test, prompt)
            if result is not None:
                return result
            self.drop_zygote()
        detail = f"trusted state changed before the program: {changed}" if changed else \
            "the zygote died before forking the candidate, or an earlier program's processes remain"
        return {"id": req["id"], "status": "sandbox error", "detail": detail[:500], "duration_s": 0.0, "cpu_s": 0.0,
                "output": "", "damaged": True}

    def judge(self, req, candidate, test, prompt):
        start, judge_cpu = time.monotonic(), time.process_time()
        cpu, wall = float(req["cpu_seconds"]), float(req["wall_seconds"])
        world = self.world.begin(req)
        if world is None:
            return None
        try:
            s_judge, out_r = self.start_candidate(req, candidate, *world)
        except OSError:
            self.world.abandon()
            return None
        watch = Watch(lambda: self.world.used() + time.process_time() - judge_cpu, out_r, start + wall, cpu,
                      req["output_bytes"], self.world.watching())
        channel = Channel(s_judge, watch.wait)
        error = ("Stop", "CPU-time limit")
        with JudgeTimer(watch):
            error = run_test(self.compiled(test, "<test>"), req["entry_point"], channel,
                             None if prompt is None else self.compiled(prompt, "<prompt>"))
        judge_cpu = time.process_time() - judge_cpu
        os.close(s_judge)
        pid = self.candidate_pid(5.0)
        if pid is None and self.zygote_pid is None:   # the zygote died before it forked: nothing of it ran
            self.world.abandon()
            watch.drain(0.0)
            if watch.out_r is not None:
                os.close(watch.out_r)
            return None
        end = None
        if pid and watch.stop is None and type(channel.fatal).__name__ == "CandidateDied":
            end = self.candidate_end(pid, 0.3)
        self.zygote_news(0.0)
        used, clean = self.world.finish(pid, end)   # every process of the program is killed
        used = max(used, end[1] if end else 0.0) + judge_cpu
        if len(self.reaped) > 256:
            self.reaped.clear()
        if watch.stop is None and used > cpu:
            watch.stop = "CPU-time limit"   # spent between two polls, or by the judge after the last one
        if watch.stop:   # even if the test swallowed the Stop and returned
            error = ("Stop", watch.stop)
        status, detail = classify(error, watch.stop, end, end is None, cpu, channel.reported_oom)
        if status not in ("passed", "timed out") and self.world.oom_killed():
            status, detail = "out of memory", f"the program's memory cgroup killed a process ({detail})"
        watch.drain(0.0)
        if watch.out_r is not None:
            os.close(watch.out_r)
        self.revive_zygote()
        return {"id": req["id"], "status": status, "detail": detail[:500], "duration_s": time.monotonic() - start,
                "cpu_s": used, "calls": channel.calls, "output": watch.output.decode("utf-8", "replace"),
                "damaged": not clean}

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


def options_from(args):
    options = {"scratch": "/tmp", "wipe": [], "channel": None, "launch": None, "fresh": None, "cgroups": {},
               "hide": [], "headroom": 0}
    args = list(args)
    while args:
        flag = args.pop(0)
        if flag in ("--scratch", "--channel"):
            options[flag[2:]] = args.pop(0)
        elif flag in ("--wipe", "--hide"):
            options[flag[2:]].append(args.pop(0))
        elif flag in ("--launch", "--fresh"):
            options[flag[2:]] = (int(args.pop(0)), int(args.pop(0)))
        elif flag == "--cgroup":
            controller, _, path = args.pop(0).partition("=")
            options["cgroups"][controller] = path
        elif flag == "--headroom":
            options["headroom"] = int(args.pop(0))
        else:
            raise SystemExit(f"fork server: unknown flag {flag!r}")
    return options


def main(argv):
    if argv[1:2] == ["--zygote"]:
        config = json.loads(argv[2])
        zygote(3, config["fresh"], config["joins"])
        return
    options = options_from(argv[1:])
    host_fd = None
    if options["launch"]:   # docker: we are the container's PID 1; returns in the server, in its own user namespace
        host_fd = launch(*options["launch"], options["channel"])
    elif options["channel"]:
        host = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        host.connect(options["channel"])
        host_fd = host.detach()
    Server(argv[0], options, host_fd).serve()


if __name__ == "__main__":
    main(sys.argv[1:])
