"""The fast test suite's time against a baseline revision, measured in the same run.

Checks out the baseline (default: main) and this checkout's HEAD into temporary git worktrees beside this one
(so ``../shared`` resolves as in CI), then runs ``pytest -m "not slow"`` in each, alternating A B A B so that a
machine shared with other jobs slows both alike; prints wall and CPU seconds (children included) of every run
and the ratio of the medians.

    .venv/bin/python benchmarks/bench_fast_suite.py [--baseline main] [--rounds 2]
"""
from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_suite(tree: Path) -> tuple[float, float, str]:
    """(wall s, CPU s of pytest and its children, pytest's last line) of the fast suite in ``tree``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider"],
                          cwd=tree, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, (proc.stdout.strip().splitlines() or ["(no output)"])[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="main", help="revision to compare with (default: main)")
    parser.add_argument("--rounds", type=int, default=2, help="A B rounds (default 2)")
    args = parser.parse_args()
    trees = {"baseline": ROOT.parent / f"{ROOT.name}-bench-baseline", "this": ROOT.parent / f"{ROOT.name}-bench-this"}
    revs = {"baseline": args.baseline, "this": "HEAD"}
    results: dict[str, list[tuple[float, float]]] = {"baseline": [], "this": []}
    try:
        for name, tree in trees.items():
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--force", str(tree), revs[name]],
                           check=True, capture_output=True)
            rev = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True).stdout.strip()
            print(f"{name}: {revs[name]} = {rev}", flush=True)
        for round_ in range(1, args.rounds + 1):
            for name, tree in trees.items():
                wall, cpu, last = run_suite(tree)
                results[name].append((wall, cpu))
                print(f"round {round_} {name:<8} wall {wall:7.1f} s  cpu {cpu:7.1f} s  {last}", flush=True)
    finally:
        for tree in trees.values():
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)
    for i, what in enumerate(("wall", "cpu")):
        base = statistics.median(r[i] for r in results["baseline"])
        this = statistics.median(r[i] for r in results["this"])
        print(f"median {what}: baseline {base:.1f} s, this {this:.1f} s, ratio {this / base:.2f} "
              f"({base / this:.2f}x faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
