"""Cgroups delegated to each sandbox (host side): memory, cpuacct and pids (cgroup v1), nested under our own.

Per sandbox, one directory per controller, owned by the sandbox's trusted uid so that its fork server can make
the program cgroup inside it (sandbox.accounts) and move each candidate there; the host bind-mounts them into
the sandbox. The bwrap sandbox's own processes run in them too, so the memory limit bounds the whole sandbox
(bubblewrap has none of its own). They are made under the cgroups we run in (never at the root of a
hierarchy), so whatever limits the machine puts on us still hold. Without permission (not root, a read-only
cgroupfs) or on a cgroup v2 host (delegation is not implemented), there are none: the sandbox then counts a
program's CPU from /proc and bounds its memory by rlimits, and ``availability`` says so.
"""
from __future__ import annotations

import os
from pathlib import Path

CONTROLLERS = ("memory", "cpuacct", "pids")


def hierarchies() -> dict[str, Path]:
    """Controller -> the v1 cgroup directory we run in, for each of CONTROLLERS that is mounted; {} if one is not."""
    mounts = {}
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fstype, _, options = right.split()[:3]
                if fstype == "cgroup":
                    for ctl in options.split(","):
                        if ctl in CONTROLLERS:
                            mounts[ctl] = Path(left.split()[4])
        own = {}
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for ctl in controllers.split(","):
                if ctl in mounts:
                    own[ctl] = mounts[ctl] / path.lstrip("/")
    except (OSError, ValueError):
        return {}
    return own if set(own) == set(CONTROLLERS) and all(p.is_dir() for p in own.values()) else {}


def make(name: str, memory_bytes: int, processes: int, owner: int | None) -> dict[str, Path]:
    """One directory per controller named ``name``, limited, its procs files and itself owned by ``owner``;
    {} if we may not (then nothing is left behind)."""
    made: dict[str, Path] = {}
    try:
        for ctl, parent in hierarchies().items():
            path = parent / name
            path.mkdir(exist_ok=True)
            made[ctl] = path
            if ctl == "memory":
                limits = [path / name for name in ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes")
                          if (path / name).exists()]
                try:
                    for f in limits:
                        f.write_text(str(memory_bytes))
                except OSError:   # a directory left by a run that died, with a lower limit: memsw may not be below
                    for f in reversed(limits):
                        f.write_text(str(memory_bytes))
            elif ctl == "pids":
                (path / "pids.max").write_text(str(processes))
            if owner is not None:
                for entry in (path, path / "cgroup.procs", path / "tasks"):
                    os.chown(entry, owner, owner)
    except OSError:
        remove(made)
        return {}
    return made


def enter_then_exec(paths: dict[str, Path], argv: list[str]) -> list[str]:
    """``argv`` run so that it is in the cgroups from its first instruction (a shell adds itself, then execs)."""
    if not paths:
        return argv
    procs = [str(p / "cgroup.procs") for p in paths.values()]
    script = " && ".join(f'echo $$ > "${i + 1}"' for i in range(len(procs))) + ' && shift ' + str(len(procs)) + \
        ' && exec "$@"'
    return ["/bin/sh", "-c", script, "sh", *procs, *argv]


def remove(paths: dict[str, Path]) -> None:
    """Remove the sandbox's cgroups (their program cgroup first); they must have no process left."""
    for path in paths.values():
        for directory in (path / "program", path):
            try:
                directory.rmdir()
            except OSError:
                pass
