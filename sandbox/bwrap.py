"""The ``bwrap`` backend: the fork server inside bubblewrap, in a user namespace that maps a block of host uids.

bubblewrap makes the sandbox (new mount, PID, network, IPC and UTS namespaces; a read-only root, ``/usr`` and
``/dev``; the cgroups delegated to it under /run/capforecast/cgroup) in a user namespace whose uid and gid maps we
write ourselves (``--userns-block-fd``): a block of host uids that own nothing on the host (sandbox.uids). The
server runs as its inner root, with capabilities inside it only, and gives every program a fresh world under
another uid of the block (sandbox.world). Needs root, or a subuid range and newuidmap (rootless).
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tempfile

from sandbox import cgroup, uids
from sandbox.api import Limits
from sandbox.pool import ForkServerPool, PipeTransport, SandboxDied, server_argv

SCRATCH_MB = 256
MEMORY_HEADROOM_MB = 512   # sandbox bound beyond one program's: server, zygote, the program's cgroup headroom
PROGRAM_HEADROOM_MB = 64   # a program's memory cgroup beyond its per-process address-space limit
CGROUP_DIR = "/run/capforecast/cgroup"   # where the delegated cgroups appear inside; covered for candidates
HIDE = "/run/capforecast"
PROCESSES_HEADROOM = 16    # server, zygote, bwrap's own


def find_python() -> str | None:
    """A python3 under /usr, which is the only host tree the sandbox sees."""
    for path in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(path, os.X_OK):
            return path
    return None


def root_binds() -> list[str]:
    cmd = ["--ro-bind", "/usr", "/usr"]
    for top in ("bin", "lib", "lib64", "sbin"):
        path = f"/{top}"
        if os.path.islink(path):
            cmd += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            cmd += ["--ro-bind", path, path]
    return cmd


def bwrap_command(python: str, limits: Limits, block_fd: int, info_fd: int, cgroups: dict, block) -> list[str]:
    """The bubblewrap command line running the fork server as PID 1 of fresh namespaces, root of ours."""
    cmd = ["bwrap", "--unshare-user", "--userns-block-fd", str(block_fd), "--info-fd", str(info_fd),
           "--uid", "0", "--gid", "0", "--cap-add", "ALL", "--unshare-pid", "--unshare-net", "--unshare-ipc",
           "--unshare-uts", "--die-with-parent", "--as-pid-1", "--new-session", "--clearenv",
           "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp", "--setenv", "LANG", "C.UTF-8",
           "--hostname", "sandbox", *root_binds(), "--proc", "/proc", "--dev", "/dev",
           "--size", str(SCRATCH_MB << 20), "--tmpfs", "/tmp", "--size", str(16 << 20), "--tmpfs", "/dev/shm"]
    flags = []
    for ctl, path in cgroups.items():
        cmd += ["--bind", str(path), f"{CGROUP_DIR}/{ctl}"]
        flags += ["--cgroup", f"{ctl}={CGROUP_DIR}/{ctl}"]
    cmd += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/",
            *server_argv(python, "--fresh", "1", str(block.count - 1), *flags, "--hide", HIDE,
                         "--headroom", str(PROGRAM_HEADROOM_MB))]
    return cmd


class BwrapTransport(PipeTransport):
    """The fork server's stdin/stdout; closing also removes the sandbox's cgroups and frees its uid block."""

    def __init__(self, proc: subprocess.Popen, stderr_file, cgroups: dict, block):
        super().__init__(proc, stderr_file)
        self.cgroups, self.block = cgroups, block

    def close(self) -> None:
        super().close()
        cgroup.remove(self.cgroups)
        self.block.release()


def memory_limit(limits: Limits) -> int:
    """Bytes one sandbox may hold in all (processes, tmpfs): as docker's mem_limit."""
    return (limits.memory_mb + MEMORY_HEADROOM_MB) << 20


def read_info(fd: int) -> dict:
    """bubblewrap's --info-fd JSON (the sandbox's pid on the host), read until it parses."""
    data = b""
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            raise SandboxDied(f"bubblewrap exited before it said where its sandbox is: {data[-200:]!r}")
        data += chunk
        try:
            return json.loads(data)
        except ValueError:
            continue


def start(slot: int, limits: Limits) -> PipeTransport:
    python = find_python()
    block = uids.allocate(slot)
    cgroups = {}
    try:
        owner = block.base if os.geteuid() == 0 else None
        if owner is not None:
            cgroups = cgroup.make(f"capforecast-{block.base}", memory_limit(limits),
                                  limits.processes + PROCESSES_HEADROOM, owner)
        ids = {"user": block.base, "group": block.base, "extra_groups": []} if os.geteuid() == 0 else {}
        block_r, block_w = os.pipe()
        info_r, info_w = os.pipe()
        stderr = tempfile.TemporaryFile()
        try:
            proc = subprocess.Popen(cgroup.enter_then_exec(cgroups, bwrap_command(python, limits, block_r, info_w,
                                                                                   cgroups, block)),
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                                    env={"PATH": "/usr/bin:/bin"}, close_fds=True, pass_fds=(block_r, info_w),
                                    start_new_session=True, **ids)
        finally:
            os.close(block_r)
            os.close(info_w)
        transport = BwrapTransport(proc, stderr, cgroups, block)
        try:
            block.write_maps(read_info(info_r)["child-pid"])
            os.write(block_w, b"1")
        except (OSError, KeyError, subprocess.SubprocessError, SandboxDied) as exc:
            transport.close()
            raise SandboxDied(f"cannot map the sandbox's uids: {exc}") from None
        finally:
            os.close(info_r)
            os.close(block_w)
        return transport
    except BaseException:
        if "transport" not in locals():
            cgroup.remove(cgroups)
            block.release()
        raise


@functools.lru_cache(maxsize=1)
def availability() -> tuple[bool, str]:
    """Whether bubblewrap can run the fork server here, and why (not)."""
    if shutil.which("bwrap") is None:
        return False, "bubblewrap is not installed (apt-get install -y bubblewrap)"
    python = find_python()
    if python is None:
        return False, "no python3 under /usr to run inside bubblewrap (apt-get install -y python3)"
    try:
        block = uids.allocate(63)
    except uids.NoUidBlock as exc:
        return False, str(exc)
    try:
        probe = ["bwrap", "--unshare-user", "--unshare-all", "--die-with-parent", "--as-pid-1", *root_binds(),
                 "--proc", "/proc", "--dev", "/dev", python, "-I", "-S", "-c", "import ctypes, json, socket"]
        ids = {"user": block.base, "group": block.base, "extra_groups": []} if os.geteuid() == 0 else {}
        r = subprocess.run(probe, capture_output=True, timeout=30, env={"PATH": "/usr/bin:/bin"}, **ids)
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"bubblewrap failed to start: {exc}"
    finally:
        block.release()
    if r.returncode != 0:
        why = r.stderr.decode(errors="replace").strip()[-300:]
        return False, f"bubblewrap cannot create namespaces here ({why}); unprivileged user namespaces must be enabled"
    accounts = "a memory, CPU and pids cgroup per program" if cgroup.hierarchies() and os.geteuid() == 0 else \
        "no cgroups to delegate (CPU counted from /proc, memory bounded per process)"
    return True, (f"bubblewrap works ({python}, a user namespace of {block.count} host uids, a uid per program, "
                  f"{accounts})")


def open_bwrap(limits: Limits, workers: int) -> ForkServerPool:
    """A pool of ``workers`` bubblewrap sandboxes."""
    return ForkServerPool("bwrap", lambda slot: start(slot, limits), limits, workers)
