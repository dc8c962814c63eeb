"""Records passed between stages, and the append-only JSONL/CSV files that carry them."""
from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
import re
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


def read_bytes(path: str | Path) -> bytes:
    """A file's bytes, gunzipped when it is gzip (by its content, not its name)."""
    data = Path(path).read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise BadInput(f"{path}: a gzip file that cannot be read ({exc}); it is cut short or damaged") from None
    return data


def decode_text(path: str | Path, data: bytes, field_of=None, first_line: int = 1) -> str:
    """``data`` as UTF-8, or BadInput naming file, line, column and (via ``field_of(line_text)``) the field.

    ``field_of`` gets the offending line decoded with surrogates for the bad bytes and returns the name of
    the field that holds them (JSON key, CSV column, YAML key) or None.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = data.rfind(b"\n", 0, exc.start) + 1
        end = data.find(b"\n", exc.start)
        raw_line = data[start:end if end >= 0 else len(data)]
        line = data.count(b"\n", 0, exc.start) + first_line
        column = len(data[start:exc.start].decode("utf-8", "replace")) + 1
        field = None
        if field_of is not None:
            try:
                field = field_of(raw_line.decode("utf-8", "surrogateescape"))
            except Exception:  # noqa: BLE001 - naming the field is a courtesy; the line and column stand
                field = None
        where = f"{path}, line {line}" + (f", field '{field}'" if field else "")
        raise BadInput(f"{where}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at column {column}); the file "
                       f"must be UTF-8 text: re-encode it (e.g. `iconv -f latin1 -t utf-8`) or fix that "
                       f"field") from None


def read_text(path: str | Path, field_of=None) -> str:
    """A text file (gzip or not) decoded as UTF-8; undecodable bytes are BadInput naming line and column."""
    return decode_text(path, read_bytes(path), field_of)


def _undecodable(value, prefix: str = "") -> str | None:
    """The dotted path of the first string inside a JSON value that holds undecodable bytes (surrogates)."""
    if isinstance(value, str):
        return prefix if any("\udc80" <= ch <= "\udcff" for ch in value) else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        name = f"{prefix}[{key}]" if isinstance(key, int) else f"{prefix}.{key}" if prefix else str(key)
        if isinstance(key, str) and _undecodable(key) is not None:
            return name
        found = _undecodable(item, name)
        if found is not None:
            return found
    return None


def json_field_of(line: str) -> str | None:
    """For decode_text: the JSON field of one line that holds undecodable bytes (a whole row, or one line of
    an indented file, where the last key before the bad byte names it)."""
    try:
        return _undecodable(json.loads(line))
    except json.JSONDecodeError:
        bad = next((i for i, ch in enumerate(line) if "\udc80" <= ch <= "\udcff"), len(line))
        keys = re.findall(r'"([^"]+)"\s*:', line[:bad])
        return keys[-1] if keys else None


def read_json(path: str | Path):
    """A whole JSON file; bad UTF-8 and bad JSON are BadInput naming file and line."""
    try:
        return json.loads(read_text(path, json_field_of))
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg})") from None


def read_jsonl(path: str | Path, allow_torn_tail: bool = True) -> Iterator[tuple[int, dict]]:
    """Yield (line number, row) from a JSONL file, gzipped or not.

    With allow_torn_tail (files this tool appends to), a last line cut short by an interrupted
    write is skipped, since resume redoes it; input files pass False so that any bad line is an error.
    """
    path = Path(path)
    lines = read_bytes(path).split(b"\n")
    last = len(lines) - (1 if lines and lines[-1] == b"" else 0)
    for number, raw in enumerate(lines[:last], start=1):
        if not raw.strip():
            continue
        torn = allow_torn_tail and number == last and lines[-1] != b""
        try:
            line = raw.decode("utf-8")
            row = json.loads(line)
        except UnicodeDecodeError:
            if torn:
                warn_torn_tail(path, number)
                return
            decode_text(path, raw, json_field_of, first_line=number)   # raises BadInput naming line and field
            raise
        except json.JSONDecodeError as exc:
            if torn:
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
        with _naming(self.path):
            self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            self._fh.flush()

    def close(self) -> None:
        with _naming(self.path):
            try:
                self._fh.flush()
                os.fsync(self._fh.fileno())
            finally:
                self._fh.close()

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, kind, *exc) -> None:
        if kind is None:
            self.close()
            return
        try:   # already failing (a full disk, Ctrl-C): the first error is the one to report, not a second flush's
            self.close()
        except OSError:
            pass


class _naming:
    """Re-raise an OSError of writing to ``path`` with the path in it (a file object's errors name none)."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None


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
        with _naming(path), os.fdopen(fd, "w", encoding="utf-8") as fh:
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


def csv_field_of(data: bytes):
    """For decode_text on a CSV: the column (named by the header) of the cell that holds undecodable bytes."""
    header = next(csv.reader([data.split(b"\n", 1)[0].decode("utf-8", "replace").strip()]), [])

    def field_of(line: str) -> str | None:
        cells = next(csv.reader([line]), [])
        bad = next((i for i, c in enumerate(cells) if _undecodable(c) is not None), None)
        return None if bad is None else header[bad] if bad < len(header) else f"column {bad + 1}"
    return field_of


def read_csv_rows(path: str | Path) -> tuple[list[str], Iterator[tuple[int, dict]]]:
    """(header, (line number, row) ...) of a UTF-8 CSV file; undecodable bytes name line and column."""
    data = read_bytes(path)
    reader = csv.DictReader(io.StringIO(decode_text(path, data, csv_field_of(data)), newline=""))
    header = list(reader.fieldnames or [])
    return header, ((reader.line_num, row) for row in reader)


def read_pass_counts(path: str | Path) -> list[PassCount]:
    """Read ``checkpoint,compute,task_id,n,passed`` (extra columns ignored); errors name line and field."""
    path = Path(path)
    if not path.exists():
        raise BadInput(f"{path}: file not found")
    out: list[PassCount] = []
    seen: dict[tuple[str, str], int] = {}
    computes: dict[str, tuple[float, int]] = {}
    header, rows = read_csv_rows(path)
    missing = [c for c in PASS_COUNT_COLUMNS if c not in header]
    if missing:
        raise BadInput(f"{path}, line 1: missing column(s) {', '.join(missing)}; "
                       f"expected {','.join(PASS_COUNT_COLUMNS)}")
    for number, row in rows:
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
        if not (math.isfinite(compute) and compute > 0):
            raise BadInput(f"{path}, line {number}: field 'compute' must be a finite positive number of FLOPs, "
                           f"got {row['compute']!r}")
        if ints["n"] < 0 or not 0 <= ints["passed"] <= ints["n"]:
            raise BadInput(f"{path}, line {number}: need 0 <= passed <= n, "
                           f"got passed={ints['passed']} n={ints['n']}")
        name = row["checkpoint"]
        first = computes.setdefault(name, (compute, number))
        if not math.isclose(first[0], compute, rel_tol=1e-9):
            raise BadInput(f"{path}, line {number}: field 'compute': checkpoint {name!r} has compute "
                           f"{row['compute']} here but {first[0]:g} on line {first[1]}; one checkpoint has one "
                           f"training compute (two models under one name?)")
        key = (name, row["task_id"])
        if key in seen:
            raise BadInput(f"{path}, line {number}: duplicate row for checkpoint {key[0]!r}, task_id "
                           f"{key[1]!r} (first on line {seen[key]}); each (checkpoint, task_id) must appear "
                           f"once: merge the rows (sum n and passed) if they are separate batches")
        seen[key] = number
        out.append(PassCount(name, compute, row["task_id"], ints["n"], ints["passed"]))
    if not out:
        raise BadInput(f"{path}: no rows")
    return out


def foreign_benchmark(counts: list[PassCount]) -> list[str]:
    """Checkpoints whose task_ids share none with the other checkpoints' (judged on another benchmark)."""
    tasks: dict[str, set[str]] = {}
    for c in counts:
        tasks.setdefault(c.checkpoint, set()).add(c.task_id)
    if len(tasks) < 2:
        return []
    return [name for name, own in tasks.items()
            if not own & set().union(*(t for other, t in tasks.items() if other != name))]


def foreign_message(counts: list[PassCount], foreign: list[str]) -> str:
    """One sentence naming the checkpoints of ``foreign_benchmark`` and examples of each side's task ids."""
    def examples(names) -> str:
        ids = sorted({c.task_id for c in counts if c.checkpoint in names})
        return ", ".join(repr(t) for t in ids[:2]) + (f" … ({len(ids)} problems)" if len(ids) > 2 else "")
    others = [n for n in dict.fromkeys(c.checkpoint for c in counts) if n not in foreign]
    return (f"checkpoint(s) {', '.join(repr(n) for n in foreign)} share no problem with the others ({examples(foreign)} "
            f"vs {examples(others)}): their samples were judged on another benchmark; count every checkpoint on "
            f"the same problems")
