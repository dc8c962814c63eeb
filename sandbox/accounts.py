"""What the server counts and checks (stdlib only): the program's cgroups, and the trusted processes' own state.

``Cgroups``: one cgroup per controller (cgroup v1: memory, cpuacct, pids), made once per sandbox
under the directories the host delegated to it, and reused: every process of a program is born in them (the
candidate joins before it runs anything), whoever its parent is (``clone(CLONE_PARENT)`` included), so the
program's CPU is the cgroup's usage since it started and its memory and process count are bounded together. The
cgroup files are never visible to a candidate (its mount namespace covers them). Before each program the cgroups
must be empty (nothing of the previous program alive) and their peak is reset.

``trusted_state``: every resource limit, the scheduling policy and priority, the nice value and the CPU affinity of
a trusted process. A candidate cannot change them (another uid, another PID namespace); the server compares them
before and after each program anyway and stops serving if they ever differ.
"""
import os
import resource

RLIMITS = tuple(sorted(getattr(resource, name) for name in dir(resource) if name.startswith("RLIMIT_")))


def trusted_state(pid):
    """What no program may change in a trusted process (``pid``): limits, scheduling, nice, affinity."""
    return (tuple(resource.prlimit(pid, r) for r in RLIMITS), os.sched_getscheduler(pid),
            os.sched_getparam(pid).sched_priority, os.getpriority(os.PRIO_PROCESS, pid),
            tuple(sorted(os.sched_getaffinity(pid))))


def describe_change(before, after):
    """What differs between two trusted_state()s, in words."""
    names = {getattr(resource, n): n for n in dir(resource) if n.startswith("RLIMIT_")}
    parts = [f"{names[r]} {b} -> {a}" for r, b, a in zip(RLIMITS, before[0], after[0]) if a != b]
    parts += [f"{what} {b} -> {a}" for what, b, a in zip(("policy", "priority", "nice", "affinity"), before[1:],
                                                         after[1:]) if a != b]
    return ", ".join(parts)


class Cgroups:
    """The program cgroups under ``dirs`` (controller -> the directory the host delegated to this sandbox), made
    and opened once: every later read and write goes through these fds (their paths are then covered)."""

    def __init__(self, dirs):
        paths = {ctl: os.path.join(path, "program") for ctl, path in dirs.items()}
        for path in paths.values():
            os.makedirs(path, exist_ok=True)

        def fd(ctl, name, mode=os.O_RDONLY):
            if ctl not in paths or not os.path.exists(os.path.join(paths[ctl], name)):
                return None
            return os.open(os.path.join(paths[ctl], name), mode | os.O_CLOEXEC)

        self.join_fds = [fd(ctl, "cgroup.procs", os.O_WRONLY) for ctl in paths]
        self.procs_fd = fd(next(iter(paths)), "cgroup.procs")
        self.cpu_fd = fd("cpuacct", "cpuacct.usage")
        self.peak_fd = fd("memory", "memory.max_usage_in_bytes", os.O_WRONLY)
        self.oom_fd = fd("memory", "memory.oom_control")
        self.memory_fds = [fd("memory", name, os.O_WRONLY) for name in ("memory.limit_in_bytes",
                                                                          "memory.memsw.limit_in_bytes")]
        self.pids_fd = fd("pids", "pids.max", os.O_WRONLY)
        self.limits, self.start = None, (0.0, 0)

    def set_limits(self, memory_bytes, processes):
        if self.limits == (memory_bytes, processes):
            return
        order = [f for f in self.memory_fds if f is not None]
        if self.limits and memory_bytes > self.limits[0]:
            order.reverse()   # memsw may never be below the memory limit
        for f in order:
            os.write(f, str(memory_bytes).encode())
        if self.pids_fd is not None:
            os.write(self.pids_fd, str(processes).encode())
        self.limits = (memory_bytes, processes)

    def cpu_seconds(self):
        return 0.0 if self.cpu_fd is None else int(os.pread(self.cpu_fd, 64, 0)) / 1e9

    def oom_kills(self):
        if self.oom_fd is None:
            return 0
        for line in os.pread(self.oom_fd, 4096, 0).splitlines():
            key, _, value = line.partition(b" ")
            if key == b"oom_kill":
                return int(value)
        return 0

    def members(self):
        return os.pread(self.procs_fd, 4096, 0).split()

    def begin(self):
        """At the start of a program: False if a process of an earlier one is still in the cgroups."""
        if self.members():
            return False
        if self.peak_fd is not None:
            os.write(self.peak_fd, b"0")
        self.start = (self.cpu_seconds(), self.oom_kills())
        return True

    def used(self):
        """CPU seconds of every process of this program so far."""
        return self.cpu_seconds() - self.start[0]

    def oom_killed(self):
        return self.oom_kills() > self.start[1]
