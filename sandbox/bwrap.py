"""The ``bwrap`` backend: the fork server inside bubblewrap (user/net/pid/ipc/uts namespaces, a read-only root and
/dev, size-limited tmpfs /tmp and /dev/shm: the only places a candidate can write, emptied after each program)."""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from sandbox import cgroup
from sandbox.api import Limits
from sandbox.pool import ForkServerPool, PipeTransport, server_argv, slot_uid

SANDBOX_UID = 65534       # what the candidate sees inside
SCRATCH_MB = 256
MEMORY_HEADROOM_MB = 512   # beyond one process's address-space limit: server, zygote, tmpfs, a few forks


def find_python() -> str | None:
    """A python3 under /usr, which is the only host tree the sandbox sees."""
    for path in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(path, os.X_OK):
            return path
    return None


def bwrap_command(python: str, limits: Limits) -> list[str]:
    """The bubblewrap command line running the fork server as PID 1 of fresh namespaces."""
    cmd = ["bwrap", "--unshare-user", "--unshare-all", "--disable-userns", "--die-with-parent", "--as-pid-1",
           "--new-session", "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp",
           "--setenv", "LANG", "C.UTF-8", "--hostname", "sandbox", "--ro-bind", "/usr", "/usr"]
    for top in ("bin", "lib", "lib64", "sbin"):
        path = f"/{top}"
        if os.path.islink(path):
            cmd += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            cmd += ["--ro-bind", path, path]
    cmd += ["--proc", "/proc", "--dev", "/dev",
            "--size", str(SCRATCH_MB << 20), "--tmpfs", "/tmp",
            "--size", str(16 << 20), "--tmpfs", "/dev/shm",
            "--remount-ro", "/dev", "--remount-ro", "/",   # nothing a candidate writes is read by a later exec
            "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--chdir", "/tmp",
            *server_argv(python, "--scratch", "/tmp", "--wipe", "/dev/shm")]
    return cmd


def host_uid(slot: int) -> int | None:
    """The unprivileged host uid a slot's sandbox runs as when we are root; None to run as ourselves."""
    return slot_uid(slot) if os.geteuid() == 0 else None


def processes_of(uid: int) -> int:
    """How many processes (tasks) this uid owns on the host now."""
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    count += int(open(f"/proc/{name}/status").read().split("Threads:")[1].split()[0])
            except (OSError, IndexError, ValueError):
                pass
    return count


class BwrapTransport(PipeTransport):
    """The fork server's stdin/stdout; closing also removes the sandbox's memory cgroup."""

    def __init__(self, proc: subprocess.Popen, stderr_file, memory: Path | None):
        super().__init__(proc, stderr_file)
        self.memory = memory

    def close(self) -> None:
        super().close()
        cgroup.remove(self.memory)


def memory_limit(limits: Limits) -> int:
    """Bytes one sandbox may hold in all (processes, tmpfs): as docker's mem_limit."""
    return (limits.memory_mb + MEMORY_HEADROOM_MB) << 20


def start(slot: int, limits: Limits) -> PipeTransport:
    python = find_python()
    uid = host_uid(slot)
    ids = {"user": uid, "group": uid, "extra_groups": []} if uid is not None else {}
    memory = cgroup.make(f"capforecast-{os.getpid()}-{slot}", memory_limit(limits), uid)
    stderr = tempfile.TemporaryFile()
    proc = subprocess.Popen(cgroup.enter_then_exec(memory, bwrap_command(python, limits)), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=stderr, env={"PATH": "/usr/bin:/bin"}, close_fds=True,
                            start_new_session=True, **ids)
    return BwrapTransport(proc, stderr, memory)


@functools.lru_cache(maxsize=1)
def availability() -> tuple[bool, str]:
    """Whether bubblewrap can run the fork server here, and why (not)."""
    if shutil.which("bwrap") is None:
        return False, "bubblewrap is not installed (apt-get install -y bubblewrap)"
    python = find_python()
    if python is None:
        return False, "no python3 under /usr to run inside bubblewrap (apt-get install -y python3)"
    uid = host_uid(0)
    ids = {"user": uid, "group": uid, "extra_groups": []} if uid is not None else {}
    probe = ["bwrap", "--unshare-user", "--unshare-all", "--disable-userns", "--die-with-parent", "--as-pid-1",
             "--ro-bind", "/usr", "/usr"]
    for top in ("bin", "lib", "lib64"):
        if os.path.islink(f"/{top}"):
            probe += ["--symlink", os.readlink(f"/{top}"), f"/{top}"]
        elif os.path.isdir(f"/{top}"):
            probe += ["--ro-bind", f"/{top}", f"/{top}"]
    probe += ["--proc", "/proc", "--dev", "/dev", python, "-I", "-S", "-c", "import ctypes, json, socket"]
    try:
        r = subprocess.run(probe, capture_output=True, timeout=30, env={"PATH": "/usr/bin:/bin"}, **ids)
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"bubblewrap failed to start: {exc}"
    if r.returncode != 0:
        why = r.stderr.decode(errors="replace").strip()[-300:]
        return False, f"bubblewrap cannot create namespaces here ({why}); unprivileged user namespaces must be enabled"
    memory = "a memory cgroup per sandbox" if cgroup.own_memory_cgroup() and os.geteuid() == 0 else \
        "no memory cgroup (rlimits per process only)"
    return True, (f"bubblewrap works ({python}, {'a dedicated uid per worker' if uid is not None else 'own uid'}, "
                  f"{memory})")


def open_bwrap(limits: Limits, workers: int) -> ForkServerPool:
    """A pool of ``workers`` bubblewrap sandboxes."""
    @functools.lru_cache(maxsize=None)
    def processes(slot: int) -> int:
        uid = host_uid(slot)
        # a dedicated uid owns nothing else; our own uid already owns processes that RLIMIT_NPROC counts
        return limits.processes if uid is not None else processes_of(os.getuid()) + limits.processes

    return ForkServerPool("bwrap", lambda slot: start(slot, limits), limits, workers, processes)
