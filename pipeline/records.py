"""Records passed between stages, and the append-only JSONL/CSV files that carry them."""
from __future__ import annotations

import csv
import gzip
import io
import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterable, Iterator

from pipeline.errors import UserError


class BadInput(UserError, ValueError):
    """Malformed input file; the message names file, line and field."""


@dataclass
class PassCount:
    """How many of ``n`` samples of one checkpoint passed one problem."""

    checkpoint: str
    compute: float  # training FLOPs, raw (not normalised)
    task_id: str
    n: int
    passed: int


PASS_COUNT_COLUMNS = [f.name for f in fields(PassCount)]


def read_jsonl(path: str | Path, allow_torn_tail: bool = True) -> Iterator[tuple[int, dict]]:
    """Yield (line number, row) from a JSONL or JSONL.GZ file.

    With allow_torn_tail (files this tool appends to), a last line cut short by an interrupted
    write is skipped, since resume redoes it; input files pass False so that any bad line is an error.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        lines = fh.readlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            if allow_torn_tail and number == len(lines) and not line.endswith("\n"):
                warn_torn_tail(path, number)
                return
            raise BadInput(f"{path}, line {number}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise BadInput(f"{path}, line {number}: expected a JSON object, got {type(row).__name__}")
        yield number, row


_TORN_WARNED: set[tuple[str, int]] = set()


def warn_torn_tail(path: Path, number: int) -> None:
    """Say once per file and line that a torn last line was skipped (readers may pass over a file many times)."""
    key = (str(Path(path).resolve()), number)
    if key in _TORN_WARNED:
        return
    _TORN_WARNED.add(key)
    print(f"warning: {path}, line {number}: skipped 1 torn last line (cut short by an interrupted write); "
          f"rerunning the stage redoes it", file=sys.stderr)


def require_fields(path: str | Path, number: int, row: dict, names: dict[str, type]) -> None:
    """Raise BadInput naming file, line and field when a required field is missing or mistyped."""
    for name, kind in names.items():
        if name not in row:
            raise BadInput(f"{path}, line {number}: field '{name}' is missing")
        if not isinstance(row[name], kind) or (kind is int and isinstance(row[name], bool)):
            want = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise BadInput(
                f"{path}, line {number}: field '{name}' should be {want}, got {type(row[name]).__name__}"
            )


class JsonlAppender:
    """Append rows to a JSONL file, one flushed line per row, repairing a torn last line first."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _truncate_torn_tail(self.path)
        self._fh = open(self.path, "a", encoding="utf-8")

    def write(self, row: dict) -> None:
        self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _truncate_torn_tail(path: Path) -> None:
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as fh:
        data = fh.read()
        if data.endswith(b"\n"):
            return
        fh.truncate(data.rfind(b"\n") + 1)


def make_run_dir(path: Path, option: str) -> None:
    """Create the run directory, or raise UserError (one paragraph) when it cannot be one or cannot be written."""
    if path.exists() and not path.is_dir():
        raise UserError(f"{option} {path}: is a file, not a directory; give a new or existing run directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{option} {path}: cannot create the run directory ({exc.strerror})") from None
    check_writable(path, option)


def check_writable(path: Path, option: str) -> None:
    """UserError unless files can be created in the directory ``path`` (read-only folder or file system)."""
    try:
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise UserError(f"{option} {path}: cannot write in this directory ({exc.strerror}); give a writable "
                        f"run directory or fix its permissions") from None


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a whole file so that readers see either the old or the new content, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results should be as readable as any file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False) + "\n")


def write_pass_counts(path: str | Path, counts: Iterable[PassCount]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=PASS_COUNT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in counts:
        writer.writerow(asdict(row))
    atomic_write_text(path, buf.getvalue())


def read_pass_counts(path: str | Path) -> list[PassCount]:
    """Read ``checkpoint,compute,task_id,n,passed`` (extra columns ignored); errors name line and field."""
    path = Path(path)
    if not path.exists():
        raise BadInput(f"{path}: file not found")
    out: list[PassCount] = []
    seen: dict[tuple[str, str], int] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in PASS_COUNT_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise BadInput(f"{path}, line 1: missing column(s) {', '.join(missing)}; "
                           f"expected {','.join(PASS_COUNT_COLUMNS)}")
        for number, row in enumerate(reader, start=2):
            try:
                compute = float(row["compute"])
            except (TypeError, ValueError):
                raise BadInput(f"{path}, line {number}: field 'compute' should be a number, "
                               f"got {row['compute']!r}") from None
            ints = {}
            for name in ("n", "passed"):
                try:
                    ints[name] = int(row[name])
                except (TypeError, ValueError):
                    raise BadInput(f"{path}, line {number}: field '{name}' should be an integer, "
                                   f"got {row[name]!r}") from None
            if compute <= 0:
                raise BadInput(f"{path}, line {number}: field 'compute' must be positive, got {compute}")
            if ints["n"] < 0 or not 0 <= ints["passed"] <= ints["n"]:
                raise BadInput(f"{path}, line {number}: need 0 <= passed <= n, "
                               f"got passed={ints['passed']} n={ints['n']}")
            key = (row["checkpoint"], row["task_id"])
            if key in seen:
                raise BadInput(f"{path}, line {number}: duplicate row for checkpoint {key[0]!r}, task_id "
                               f"{key[1]!r} (first on line {seen[key]}); each (checkpoint, task_id) must appear "
                               f"once: merge the rows (sum n and passed) if they are separate batches")
            seen[key] = number
            out.append(PassCount(row["checkpoint"], compute, row["task_id"], ints["n"], ints["passed"]))
    if not out:
        raise BadInput(f"{path}: no rows")
    return out
