"""A fresh world for every program (stdlib only): namespaces, mounts and a uid of its own.

The sandbox runs in a user namespace that maps a block of host uids which own nothing on the host (sandbox.uids).
Its root (inner uid 0) is the trusted side: the fork server and the zygote, with capabilities inside that
namespace only. Every candidate runs under another uid of the block, a new one for each program, with no
capabilities, so ``prlimit``, ``setpriority``, ``sched_setscheduler``, ``kill``, ``F_SETOWN`` and ``ptrace`` on a
trusted process fail by the kernel's ordinary permission rules; it cannot even name one, because it is PID 1 of a
PID namespace of its own.

At sandbox start (``prepare_sandbox``, the server): mounts become private and read-only (a read-only mount keeps
no access times either), except the program cgroups; ``/sys``, ``/dev/pts`` and ``/dev/mqueue`` are covered.
The server then opens the delegated cgroup files it needs and covers them (and docker's channel directory).
Per program (``Fresh``, the zygote): new mount, IPC, UTS and PID namespaces, a new network namespace unless the
last program made no socket, a new tmpfs on ``/tmp`` and ``/dev/shm`` (so inode numbers, free-space counters and
timestamps start from nothing); the zygote clones the namespace's PID 1, forks the candidate (PID 2) into them
and returns to its own namespaces. In the candidate (``settle_candidate``): it joins the program's cgroups,
mounts a proc that shows its own processes only (``subset=pid``: no /proc/stat, /proc/sys, /proc/loadavg and
other host-wide counters), starts a session and drops to the program's uid. Nothing a program can write is
readable by the next one, and every process it starts dies with its PID namespace.
"""
import ctypes
import os
import signal

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC, MS_PRIVATE, MS_STRICTATIME = 1024, 2048, 4096, 16384, 1 << 18, 1 << 24
PROGRAM_NAMESPACES = (("mnt", CLONE_NEWNS), ("net", CLONE_NEWNET), ("ipc", CLONE_NEWIPC), ("uts", CLONE_NEWUTS),
                      ("pid", CLONE_NEWPID))
SCRATCH = (("/tmp", "size=256m"), ("/dev/shm", "size=16m"))   # a fresh tmpfs for each program
COVERED = ("/sys", "/dev/pts", "/dev/mqueue")   # host-wide counters, pty and queue directories: never a candidate's
LIBC = ctypes.CDLL(None, use_errno=True)
CLONE_VM, CLONE_FILES, SIGCHLD = 0x100, 0x400, 17
INIT_STACK = 1 << 16
PROC = (b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, b"subset=pid")   # a program's own proc


def check(result, what):
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def unshare(flags):
    check(LIBC.unshare(flags), "unshare")


def setns(fd, flags):
    check(LIBC.setns(fd, flags), "setns")


def mount(source, target, fstype, flags, data=None):
    enc = lambda s: None if s is None else s.encode()   # noqa: E731
    check(LIBC.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def cover(path, mode="755"):
    """An empty read-only tmpfs over ``path``."""
    mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, f"size=4k,nr_inodes=8,mode={mode}")


def mount_points():
    """Mount points of this mount namespace, from /proc/self/mountinfo (octal escapes decoded)."""
    points = []
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            raw = line.split()[4]
            points.append(raw.decode("unicode_escape").encode("latin-1").decode("utf-8", "surrogateescape"))
    return points


def remount_read_only(path):
    """Make the mount at ``path`` read-only, keeping its other flags (a mount from a more privileged namespace
    is locked: its nosuid/nodev/noexec/atime flags must be passed back unchanged)."""
    flags = os.statvfs(path).f_flag
    if flags & os.ST_RDONLY:
        return
    keep = MS_REMOUNT | MS_BIND | MS_RDONLY
    for st, ms in ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
                   (os.ST_NODIRATIME, MS_NODIRATIME)):
        keep |= ms if flags & st else 0
    if flags & os.ST_NOATIME:
        keep |= MS_NOATIME
    elif not flags & os.ST_RELATIME:
        keep |= MS_STRICTATIME
    mount(None, path, None, keep)


def under(path, roots):
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def prepare_sandbox(writable):
    """Once, in the server (root of the sandbox's user namespace, PID 1 of its PID namespace, in a mount namespace
    of its own): private propagation, a proc of this PID namespace, ``COVERED`` paths covered, every other mount
    read-only except /proc and ``writable`` (the delegated cgroups, which the server opens, then covers)."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for path in COVERED:
        if os.path.ismount(path):
            cover(path)
    for point in sorted(set(mount_points())):
        if not under(point, ("/proc", *COVERED, *writable)) and os.path.exists(point):
            remount_read_only(point)


class Fresh:
    """The zygote's side of a fresh world: ``enter`` before forking a candidate, ``leave`` right after. Everything
    a call needs is made once here: the zygote's pages written after a fork are copied (the candidate shares them)."""

    def __init__(self):
        self.home = [(os.open(f"/proc/self/ns/{name}", os.O_RDONLY | os.O_CLOEXEC), flag)
                     for name, flag in PROGRAM_NAMESPACES]
        self.flags = sum(flag for _, flag in PROGRAM_NAMESPACES)
        self.net = None   # the last program's network namespace
        self.scratch = [(b"tmpfs", path.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,{size}".encode())
                        for path, size in SCRATCH]
        self.stack = ctypes.create_string_buffer(INIT_STACK)
        self.init_args = (ctypes.cast(LIBC.pause, ctypes.c_void_p),
                          ctypes.c_void_p((ctypes.addressof(self.stack) + INIT_STACK - 64) & ~15),
                          CLONE_VM | CLONE_FILES | SIGCHLD, None)
        self.all_signals = signal.valid_signals()
        self.unshare, self.setns, self.mount, self.clone = LIBC.unshare, LIBC.setns, LIBC.mount, LIBC.clone

    def enter(self, reuse_net=False):
        """New namespaces for the next child (its PID namespace: for the next fork only) and fresh scratch dirs.
        With ``reuse_net`` the network namespace is the last program's, which made no socket (the server knows:
        sandbox.seccomp) and so left nothing in it."""
        if reuse_net and self.net is not None:
            check(self.unshare(self.flags & ~CLONE_NEWNET), "unshare")
            check(self.setns(self.net, CLONE_NEWNET), "setns")
        else:
            check(self.unshare(self.flags), "unshare")
            if self.net is not None:
                os.close(self.net)
            self.net = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        for args in self.scratch:
            check(self.mount(*args), "mount a scratch tmpfs")

    def spawn_init(self):
        """PID 1 of the new PID namespace, so that the candidate (PID 2) keeps ordinary signal semantics (an init
        ignores the signals it sends itself): a child that shares our memory and fd table (no copy, like a thread:
        it holds no fd of its own, so a closed channel is seen closed) and waits in pause() with every signal
        blocked, on a stack of its own, touching nothing, until it is killed (the last program's init is dead
        before the next is made); its death kills every process of the namespace."""
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, self.all_signals)
        try:
            pid = self.clone(*self.init_args)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if pid < 0:
            raise OSError(ctypes.get_errno(), "clone of the namespace's init failed")
        return pid

    def leave(self):
        """Back in the zygote's own namespaces (the child keeps the new ones)."""
        for fd, flag in self.home:
            check(self.setns(fd, flag), "setns")


def settle_candidate(uid, cgroup_fds):
    """In the candidate, PID 2 of its namespace, before it loads anything: its cgroups, its own proc, its session,
    its uid."""
    for fd in cgroup_fds:
        os.write(fd, b"0")   # this process; its children are born there
    os.setsid()
    check(LIBC.mount(*PROC), "mount /proc")
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)   # from uid 0 to another: every capability is gone
    os.mkdir("/tmp/work", 0o700)
    os.chdir("/tmp/work")
