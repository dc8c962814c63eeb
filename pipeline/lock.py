"""One writer per run directory or verdicts file: an advisory lock (``flock``) on ``<path>.lock``.

A second writer is refused at once, naming the holder's pid, command and start time. The kernel drops the lock
when its holder dies (``kill -9`` included), so a lock file left behind by a dead process is taken over, with a
warning naming that process. The lock file holds the holder's details only while it is held.
"""
from __future__ import annotations

import fcntl
import json
import os
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

from pipeline.errors import UserError


class Locked(UserError):
    """Another live process writes this run directory or file."""


def lock_path(path: Path) -> Path:
    """Where the lock for ``path`` lives: ``RUN_DIR/.lock`` for a directory, ``FILE.lock`` beside a file."""
    path = Path(path)
    return path / ".lock" if path.is_dir() else path.with_name(path.name + ".lock")


class WriterLock:
    """``with WriterLock(path):`` holds the only right to write ``path`` (a run directory or a file)."""

    def __init__(self, path: Path, what: str | None = None):
        self.path, self.lock = Path(path), lock_path(path)
        self.what = what or str(path)
        self._fd: int | None = None

    def acquire(self) -> "WriterLock":
        self.lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise Locked(f"{self.what}: another capforecast process writes here: {_describe(holder)}. Two writers "
                         f"would judge or generate everything twice; wait for it to finish (or stop it), then rerun "
                         f"this command to continue") from None
        stale = _holder(fd)
        if stale:
            print(f"warning: {self.what}: took over the lock left by {_describe(stale)}, which is no longer "
                  f"running (killed or crashed); what it wrote is kept and this run resumes from it",
                  file=sys.stderr)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": shlex.join(sys.argv),
                                  "started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                  "host": os.uname().nodename}).encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)       # empty: released cleanly, nobody's to take over
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "WriterLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _holder(fd: int) -> dict:
    try:
        data = os.pread(fd, 4096, 0)
        holder = json.loads(data.decode("utf-8")) if data.strip() else {}
    except (OSError, ValueError):
        return {"pid": "?", "command": "unknown (unreadable lock file)"}
    return holder if isinstance(holder, dict) else {}


def _describe(holder: dict) -> str:
    where = f" on {holder['host']}" if holder.get("host") and holder.get("host") != os.uname().nodename else ""
    return (f"pid {holder.get('pid', '?')}{where} ({holder.get('command', 'unknown command')}), "
            f"started {holder.get('started_at', 'at an unknown time')}")
