"""One writer per run directory, samples file or verdicts file: an advisory lock (``flock``) on the path itself.

A second writer is refused at once, naming the holder's pid, command and start time, which the holder keeps in a
hidden note beside the path (``.NAME.lock``; ``RUN_DIR/.lock`` for a directory) while it holds the lock and
removes when it lets go. The kernel drops the lock when its holder dies (``kill -9`` included), so a note left
behind names a dead process: the next writer takes over with a warning naming it.
"""
from __future__ import annotations

import fcntl
import json
import os
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from pipeline.errors import UserError


class Locked(UserError):
    """Another live process writes this run directory or file."""


def note_path(path: Path) -> Path:
    """Where the holder's note for ``path`` lives."""
    path = Path(path)
    return path / ".lock" if path.is_dir() else path.with_name(f".{path.name}.lock")


class WriterLock:
    """``with WriterLock(path):`` holds the only right to write ``path`` (a run directory or a file, created
    empty when missing)."""

    def __init__(self, path: Path, what: str | None = None):
        self.path = Path(path)
        self.what = what or str(path)
        self._fd: int | None = None

    def acquire(self) -> "WriterLock":
        if self.path.is_dir():
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o644)
        note = note_path(self.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Locked(f"{self.what}: another capforecast process writes here: {_describe(_holder(note, wait=True))}. "
                         f"Two writers would generate or judge everything twice; wait for it to finish (or stop it), "
                         f"then rerun this command to continue") from None
        stale = _holder(note)
        if stale:
            print(f"warning: {self.what}: took over the lock left by {_describe(stale)}, which is no longer "
                  f"running (killed or crashed); what it wrote is kept and this run resumes from it",
                  file=sys.stderr)
        from pipeline.records import atomic_write_text

        atomic_write_text(note, json.dumps({
            "pid": os.getpid(), "command": shlex.join(sys.argv), "host": os.uname().nodename,
            "started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}))
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            note_path(self.path).unlink(missing_ok=True)     # released cleanly: nothing to take over
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "WriterLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _holder(note: Path, wait: bool = False) -> dict:
    """The holder's note, {} when there is none; with ``wait``, a note being written is waited for briefly."""
    for _ in range(20 if wait else 1):
        try:
            holder = json.loads(note.read_text(encoding="utf-8"))
            return holder if isinstance(holder, dict) else {}
        except FileNotFoundError:
            if wait:
                time.sleep(0.05)
        except (OSError, ValueError):
            return {"pid": "?", "command": "unknown (unreadable lock note)"}
    return {}


def _describe(holder: dict) -> str:
    where = f" on {holder['host']}" if holder.get("host") and holder.get("host") != os.uname().nodename else ""
    return (f"pid {holder.get('pid', '?')}{where} ({holder.get('command', 'unknown command')}), "
            f"started {holder.get('started_at', 'at an unknown time')}")
