"""The program's limits as the fork server enforces them (stdlib only): CPU of all its processes, wall clock, output.

CPU is the program's, not one process's: the candidate's own clock, plus what its descendants used (alive,
zombie, or reaped: reaped by a program process it is in that process's children's time, reaped by the
zygote or the server it was reported), plus the judge's own work on this program. Statuses come from what
the server saw: its limits, the wait status, the exception *type* the judge raised; never from message text.
"""
import os
import select
import signal
import time

POLL_S = 0.05       # longest gap between two reads of the program's CPU time
MIN_POLL_S = 0.002  # shortest, when its budget is nearly spent
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Stop(BaseException):
    """A CPU-time or wall-clock limit was hit while the judge worked or waited for the candidate."""


def cpu_seconds_of(pid):
    """CPU time a live process has used so far (its POSIX CPU clock), 0 if it is gone."""
    try:
        return time.clock_gettime(((~pid) << 3) | 2)
    except OSError:
        return 0.0


def proc_stat(pid):
    """(state, ppid, pgrp, own cpu s, reaped children's cpu s) of a process from /proc, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (fields[0].decode(), int(fields[1]), int(fields[2]), (int(fields[11]) + int(fields[12])) / CLK_TCK,
                (int(fields[13]) + int(fields[14])) / CLK_TCK)
    except (OSError, IndexError, ValueError):
        return None


class Watch:
    """Waits for the candidate's replies while enforcing the wall and CPU limits and draining its output.

    ``used()`` is the program's CPU so far (all its processes and the judge)."""

    def __init__(self, used, out_r, deadline, cpu, cap, also=None):
        self.used, self.out_r, self.deadline, self.cpu, self.cap = used, out_r, deadline, cpu, cap
        self.also = also   # more fds to serve while waiting: ``also.fds()``, ``also.ready(fd)``
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
                used = self.used()
                if used > self.cpu:
                    self.stop = "CPU-time limit"
                # one thread cannot spend the rest of its budget sooner than that much wall time
                self.next_cpu_check = now + min(POLL_S, max(MIN_POLL_S, (self.cpu - used) / 2))
            if self.stop:
                break
            mine = [fd] if self.out_r is None else [fd, self.out_r]
            others = self.also.fds() if self.also is not None else []
            ready = select.select(mine + others, [], [], max(0.0, min(self.next_cpu_check, self.deadline) - now))[0]
            if self.out_r in ready:
                self.drain()
            for other in others:
                if other in ready:
                    self.also.ready(other)
            if fd in ready:
                return
        raise Stop(self.stop)


class JudgeTimer:
    """Interrupts the judge's own work (decoding, a trusted test that loops) once it alone used ``cpu`` seconds."""

    def __init__(self, watch):
        self.watch, self.armed = watch, False

    def __enter__(self):
        if signal.getsignal(signal.SIGPROF) != JudgeTimer.dispatch:
            signal.signal(signal.SIGPROF, JudgeTimer.dispatch)
        JudgeTimer.current = self
        self.armed = True
        signal.setitimer(signal.ITIMER_PROF, self.watch.cpu + 0.01)
        return self

    current = None

    @staticmethod
    def dispatch(*_):
        if JudgeTimer.current is not None:
            JudgeTimer.current.fire()

    def fire(self):
        if self.armed:
            self.armed = False
            self.watch.stop = self.watch.stop or "CPU-time limit"
            raise Stop(self.watch.stop)

    def __exit__(self, *exc):
        self.armed = False
        signal.setitimer(signal.ITIMER_PROF, 0)
        return exc[0] is Stop


def signal_name(sig):
    try:
        return signal.Signals(sig).name
    except ValueError:   # real-time signals have no name
        return f"signal {sig}"


def classify(error, stop, end, killed_by_us, cpu, reported_oom):
    """The status, from what the trusted judge saw and how the candidate process ended."""
    if error is None:
        return "passed", ""
    if stop:
        return "timed out", stop
    name, msg = error
    if name == "MemoryError" or (name == "CandidateAborted" and reported_oom):
        return "out of memory", f"{name}: {msg}"
    if name == "CandidateDied":
        if end is None or killed_by_us:
            return "failed", "the candidate closed its channel before check() finished"
        status, used = end
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if sig == signal.SIGXCPU or (sig == signal.SIGKILL and used >= cpu - 0.05):
                return "timed out", "CPU-time limit"
            return "crashed", f"candidate killed by {signal_name(sig)}"
        return "failed", f"candidate exited with code {os.WEXITSTATUS(status)} before check() finished"
    return "failed", f"{name}: {msg}"
