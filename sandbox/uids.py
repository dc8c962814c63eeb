"""Blocks of host uids, one per sandbox: its user namespace maps the block, inner uid 0 (the trusted server and
zygote) to the block's first uid and every candidate to another one of it (a new one for each program).

As root, a block is ``BLOCK`` consecutive uids from ``FLOOR`` up (uids no account on a normal host has, so they
own nothing on it), and we write the maps ourselves. As another user, the block comes from the user's
``/etc/subuid`` and ``/etc/subgid`` ranges (the rootless-container convention) and ``newuidmap``/``newgidmap``
write them; inner 0 is then the user's own uid. A block belongs to one sandbox at a time: whoever holds the
lock file of its number (``flock``, released when the sandbox's host process ends) may use it.
"""
from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

BLOCK = 4096            # uids per sandbox: 1 trusted + 4095 candidate uids, so 4095 programs in a row differ
FLOOR = 1 << 30         # first host uid of the first block (root); blocks end below 2**31
BLOCKS = (1 << 30) // BLOCK
CANDIDATE_UIDS = (1, BLOCK - 1)   # inner uids of candidates: first, count


class NoUidBlock(RuntimeError):
    """No block of uids can be had here (not root, and no subuid/subgid range or no newuidmap)."""


@dataclass
class UidBlock:
    base: int                 # host uid (and gid) of inner uid 0
    count: int                # inner uids 0 .. count-1 are mapped
    lock_fd: int
    maps: tuple[str, str]     # the uid_map and gid_map lines
    helper: bool = False      # written by newuidmap/newgidmap (not root)

    @property
    def host_uids(self) -> set[int]:
        """Every host uid the sandbox's processes can run as."""
        uids = set()
        for line in self.maps[0].splitlines():
            _, outside, count = map(int, line.split())
            uids.update(range(outside, outside + count))
        return uids

    def write_maps(self, pid: int) -> None:
        """Map the block into the user namespace of ``pid`` (which has unshared it and waits)."""
        if not self.helper:
            for name, text in zip(("uid_map", "gid_map"), self.maps):
                with open(f"/proc/{pid}/{name}", "w") as f:
                    f.write(text)
            return
        for tool, text in zip(("newuidmap", "newgidmap"), self.maps):
            subprocess.run([tool, str(pid), *text.split()], check=True, capture_output=True, timeout=30)

    def release(self) -> None:
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1


def lock_dir(shared: bool) -> Path:
    """Where the lock files of blocks live: one directory for every user of the host's FLOOR blocks (root, or
    anyone starting docker containers), one per user for blocks of the user's own subordinate ids."""
    if shared and os.access("/run/lock", os.W_OK):
        path = Path("/run/lock/capforecast-uids")
    else:
        path = Path(tempfile.gettempdir()) / ("capforecast-uids" if shared else f"capforecast-uids-{os.geteuid()}")
    try:
        path.mkdir(mode=0o755)
        if shared:
            os.chmod(path, 0o1777)
    except FileExistsError:
        pass
    return path


def try_lock(number: int, shared: bool = True) -> int | None:
    path = lock_dir(shared) / f"{number}.lock"
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDONLY | os.O_CLOEXEC, 0o644)
    except PermissionError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except OSError:
        os.close(fd)
        return None


def sub_range(path: str, user: str, uid: int) -> tuple[int, int] | None:
    """The first range of ``user`` in /etc/subuid or /etc/subgid: (start, count)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.strip().split(":")
        if len(fields) == 3 and fields[0] in (user, str(uid)) and int(fields[2]) >= 2:
            return int(fields[1]), int(fields[2])
    return None


def rootless_ranges() -> tuple[tuple[int, int], tuple[int, int]]:
    """The user's subuid and subgid ranges, or NoUidBlock saying what is missing."""
    user = pwd.getpwuid(os.getuid()).pw_name
    uids = sub_range("/etc/subuid", user, os.getuid())
    gids = sub_range("/etc/subgid", user, os.getuid())
    missing = [tool for tool in ("newuidmap", "newgidmap") if shutil.which(tool) is None]
    if uids is None or gids is None or missing:
        steps = [f"install {' and '.join(missing)} (apt-get install uidmap)"] if missing else []
        if uids is None or gids is None:
            steps.append(f"add {user} to /etc/subuid and /etc/subgid (as root: usermod --add-subuids "
                         f"100000-165535 --add-subgids 100000-165535 {user})")
        raise NoUidBlock("a sandbox runs every program under a uid of its own, which takes root or a range of "
                         "subordinate ids: " + "; ".join(steps))
    return uids, gids


def allocate(slot: int, host_blocks: bool | None = None) -> UidBlock:
    """A free block for one sandbox (its lock held until ``release``): of the host's FLOOR range when we are root or
    ``host_blocks`` (docker maps it itself), else of the user's subordinate ids."""
    start = zlib.crc32(f"{os.getpid()}:{slot}".encode())
    if host_blocks or (host_blocks is None and os.geteuid() == 0):
        for i in range(4096):
            number = (start + i) % BLOCKS
            fd = try_lock(number)
            if fd is not None:
                base = FLOOR + number * BLOCK
                line = f"0 {base} {BLOCK}\n"
                return UidBlock(base, BLOCK, fd, (line, line))
        raise NoUidBlock("every block of sandbox uids tried is in use")
    (uid0, ucount), (gid0, gcount) = rootless_ranges()
    size = min(BLOCK, ucount + 1, gcount + 1) - 1   # candidate uids per block; inner 0 is our own uid
    blocks = min(ucount, gcount) // size
    for i in range(blocks):
        number = (start + i) % blocks
        fd = try_lock(number, shared=False)
        if fd is not None:
            uid_line = f"0 {os.getuid()} 1\n1 {uid0 + number * size} {size}\n"
            gid_line = f"0 {os.getgid()} 1\n1 {gid0 + number * size} {size}\n"
            return UidBlock(os.getuid(), size + 1, fd, (uid_line, gid_line), helper=True)
    raise NoUidBlock("every block of the user's subordinate uids is in use by other sandboxes")
