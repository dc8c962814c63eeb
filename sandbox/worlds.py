"""The server's side of a program's world (stdlib only): what it starts in, how its CPU is counted, how it ends.

``FreshWorld`` (the bwrap and docker sandboxes): the candidate is forked into namespaces of its own under a uid of
its own (sandbox.world) and joins the program's cgroups (sandbox.accounts). Its CPU is the cgroups' usage;
killing PID 1 of its PID namespace kills every process it started, and once the zygote has reaped that, nothing
of the program exists any more: its tmpfs, sockets and IPC objects went with its namespaces. Without cgroups (a
host that delegates none), the CPU is counted from /proc: every process of the sandbox but the trusted ones.

``PlainWorld`` (unsafe-no-isolation only): the candidate's process group and the orphans the server adopts,
found by scanning /proc, killed until none is left; its work dir and the scratch dirs emptied afterwards.
"""
import fcntl
import os
import select
import signal
import socket
import struct
import time

from sandbox.scratch import empty_dir, is_empty, restore_mode  # inline
from sandbox.watch import cpu_seconds_of, proc_stat  # inline

KILL_WAIT_S = 5.0   # a killed program whose processes are not all gone by then leaves a damaged sandbox
NOTIF_RECV, NOTIF_SEND, NOTIF_CONTINUE = 0xC0502100, 0xC0182101, 1   # seccomp user-notification ioctls
NOTIF_SIZE = 80   # struct seccomp_notif


class SocketWatch:
    """Whether the program made a socket: its seccomp filter (sandbox.seccomp) makes every socket() and socketpair()
    wait until we let it go on, through the listener fd the candidate sends us first."""

    def __init__(self, channel):
        self.channel, self.listener, self.made = channel, None, False

    def fds(self):
        return [fd for fd in (self.channel, self.listener) if fd is not None]

    def ready(self, fd):
        if fd == self.channel:
            sock = socket.socket(fileno=fd)
            try:
                _, fds, _, _ = socket.recv_fds(sock, 16, 1)
            except OSError:
                fds = []
            finally:
                sock.detach()
            self.close_channel()
            if fds:
                self.listener = fds[0]
            return
        poll = select.poll()
        poll.register(fd, select.POLLIN)
        if not any(event & select.POLLIN for _, event in poll.poll(0)):   # no process of the program is left
            os.close(self.listener)
            self.listener = None
            return
        notification = bytearray(NOTIF_SIZE)
        try:
            fcntl.ioctl(fd, NOTIF_RECV, notification, True)
        except OSError:   # the caller died meanwhile
            return
        self.made = True   # before the socket exists
        try:
            fcntl.ioctl(fd, NOTIF_SEND, struct.pack("=QqiI", struct.unpack_from("=Q", notification)[0], 0, 0,
                                                    NOTIF_CONTINUE))
        except OSError:
            pass

    def close_channel(self):
        if self.channel is not None:
            os.close(self.channel)
            self.channel = None

    def close(self):
        self.close_channel()
        if self.listener is not None:
            os.close(self.listener)
            self.listener = None


class PlainWorld:
    """No isolation: the program is the candidate's process group plus what the server adopted."""

    every_exit_is_the_programs = False   # the zygote may report an earlier candidate's end late

    def __init__(self, server, scratch, wipe):
        self.server, self.scratch, self.wipe = server, scratch, wipe
        self.modes = {root: os.stat(root).st_mode & 0o7777 for root in [scratch, *wipe]}

    def belongs(self, p, st, pid):
        return (pid and st[2] == pid) or st[1] == self.server.pid

    def begin(self, req):
        """What the zygote's job gets for this program: (fields, fds); None if it cannot start."""
        work = os.path.join(self.scratch, "work")
        os.mkdir(work, 0o700)
        return {"work": work}, []

    def watching(self):
        """What Watch serves besides the candidate's replies while the program runs (None: nothing)."""
        return None

    def scan(self, pid):
        """(pid, stat) of the current program's processes, zombies included."""
        found, trusted = [], (self.server.pid, self.server.zygote_pid)
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) not in trusted:
                st = proc_stat(name)
                if st and self.belongs(int(name), st, pid):
                    found.append((int(name), st))
        return found

    def alive(self, pid):
        return [p for p, st in self.scan(pid) if st[0] not in "ZX"]

    def used(self, snapshot=None):
        """CPU the current program has used so far: each process (alive or zombie) with the children it reaped,
        plus the processes of it that the zygote or the server reaped."""
        server = self.server
        pid = server.candidate_pid()   # reads the zygote's news: the candidate's pid, candidates that ended
        total = server.spent
        for p, st in self.scan(pid) if snapshot is None else snapshot:
            if st[1] == server.zygote_pid and p != pid:
                continue   # an earlier candidate, killed, that the zygote has not reaped yet: not this program's
            own = max(st[3], cpu_seconds_of(p)) if p == pid and st[0] not in "ZX" else st[3]
            total += own + st[4]
        return total

    def finish(self, pid, ended):
        """Kill every process of the program; (its CPU, whether the sandbox is clean for the next program)."""
        snapshot = self.scan(pid)   # one /proc scan for the CPU account and the first round of the kill
        used = self.used(snapshot)
        killed = self.kill_all(pid, snapshot)
        return max(used, self.server.spent), self.clean() and killed

    def abandon(self):
        """The zygote died before forking: remove whatever was prepared for the program."""
        self.kill_all(None)
        self.clean()

    def oom_killed(self):
        return False

    def kill_all(self, pid, snapshot=()):
        """SIGKILL every process of the program, rescanning until no new one appears; False if that never ends.

        A process with SIGKILL pending runs no more user code and cannot fork. The lone candidate is left to
        die and be reaped by the zygote; when there were more (forks, orphans), we wait for all to be gone."""
        killed = set()
        for _ in range(1000):
            if pid:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            if snapshot:
                victims, snapshot = [p for p, st in snapshot if st[0] not in "ZX"], ()
            else:
                victims = [v for v in self.alive(pid) if v not in killed]
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
        end = time.monotonic() + KILL_WAIT_S
        while len(killed - {pid}) and self.alive(pid) and time.monotonic() < end:
            self.server.reap()
            time.sleep(0.001)
        self.server.reap()
        return not (len(killed - {pid}) and self.alive(pid))

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


class FreshWorld(PlainWorld):
    """A fresh world per program: the candidate is PID 2 of new namespaces, under uid ``first + job % count``."""

    every_exit_is_the_programs = True   # nothing of an earlier program outlives it (its namespace's init was reaped)

    def __init__(self, server, first_uid, count, cgroups, memory_headroom_mb):
        self.server, self.first_uid, self.count, self.cgroups = server, first_uid, count, cgroups
        self.headroom = memory_headroom_mb
        self.sockets, self.net_clean = None, False

    def belongs(self, p, st, pid):
        return p != 1   # everything in the sandbox but the server and the zygote

    def begin(self, req):
        """The program's uid and network namespace (the last program's if it made no socket), and the channel its
        filter's listener comes back on; None if something of an earlier program is still there."""
        if self.cgroups is not None:
            self.cgroups.set_limits((req["memory_mb"] + self.headroom) << 20, req["processes"])
            if not self.cgroups.begin():
                return None
        ours, theirs = (s.detach() for s in socket.socketpair())
        self.sockets = SocketWatch(ours)
        net = "reuse" if self.net_clean else "fresh"
        self.net_clean = False   # until this program has ended without a socket
        return {"uid": self.first_uid + self.server.job % self.count, "net": net}, [theirs]

    def watching(self):
        return self.sockets

    def used(self, snapshot=None):
        """Without cgroups: every process in the sandbox but the trusted ones, alive or zombie, with the children it
        reaped, plus every process the zygote or the server reaped during this program (clone(CLONE_PARENT) makes
        the candidate's siblings children of the zygote)."""
        server = self.server
        server.candidate_pid()   # keep reading the zygote's news
        if self.cgroups is not None:
            return self.cgroups.used()
        return server.spent + sum(st[3] + st[4] for _, st in (self.scan(None) if snapshot is None else snapshot))

    def finish(self, pid, ended):
        """Kill PID 1 of the program's namespace (the kernel kills the rest); once the zygote has reaped it, every
        process of the program is gone. (CPU, whether the cgroups are empty)."""
        used = 0.0 if self.cgroups is not None else self.used(self.scan(None))
        init = self.server.init_now
        if init:
            try:
                os.kill(init, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if self.server.candidate_end(init, KILL_WAIT_S) is None:
                self.sockets.close()
                return max(used, self.server.spent), False
        self.net_clean = not self.sockets.made
        self.sockets.close()
        if self.cgroups is None:
            return max(used, self.server.spent), not self.alive(pid)
        return self.cgroups.used(), not self.cgroups.members()

    def abandon(self):
        if self.sockets is not None:
            self.sockets.close()
        self.net_clean = False

    def oom_killed(self):
        return self.cgroups is not None and self.cgroups.oom_killed()
