"""A memory cgroup per bwrap sandbox (host side), nested under the cgroup we run in, where we may make one.

bubblewrap has no memory limit of its own: per process there is RLIMIT_AS, but a program may have up to
``processes`` of them, and its tmpfs pages outlive them until the cleanup. The cgroup bounds all of it
together, as docker's ``mem_limit`` does for a container. It is made under our own cgroup (never at the root
of the hierarchy), so whatever limits the machine puts on us still hold; without permission (not root, a
read-only cgroupfs) the sandbox runs without one and says so in ``availability``.
"""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


def own_memory_cgroup() -> tuple[Path, str] | None:
    """(directory of the memory cgroup we are in, name of its limit file); v1 or v2; None if neither."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(",") and (ROOT / "memory").is_dir():
            return ROOT / "memory" / path.lstrip("/"), "memory.limit_in_bytes"
    for line in lines:
        if line.startswith("0::") and (ROOT / "cgroup.controllers").exists():
            return ROOT / line[3:].lstrip("/"), "memory.max"
    return None


def make(name: str, limit_bytes: int, owner: int | None) -> Path | None:
    """A child memory cgroup limited to ``limit_bytes`` whose procs file ``owner`` may write; None if not allowed."""
    found = own_memory_cgroup()
    if found is None:
        return None
    parent, limit_file = found
    path = parent / name
    try:
        path.mkdir()
    except FileExistsError:
        pass
    except OSError:
        return None
    try:
        (path / limit_file).write_text(str(limit_bytes))
        swap = path / ("memory.memsw.limit_in_bytes" if limit_file.startswith("memory.limit") else "memory.swap.max")
        if swap.exists():
            swap.write_text(str(limit_bytes) if limit_file.startswith("memory.limit") else "0")
        if owner is not None:
            os.chown(path / "cgroup.procs", owner, -1)
    except OSError:
        remove(path)
        return None
    return path


def enter_then_exec(path: Path | None, argv: list[str]) -> list[str]:
    """``argv`` run so that it is in the cgroup from its first instruction (a shell adds itself, then execs)."""
    if path is None:
        return argv
    return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(path / "cgroup.procs"), *argv]


def remove(path: Path | None) -> None:
    if path is not None:
        try:
            path.rmdir()
        except OSError:
            pass
