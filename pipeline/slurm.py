"""Slurm: submit generate (GPU array over shards) and execute (CPU array over checkpoints, ``afterok``), then wait.

``capforecast submit --out DIR --shards N`` writes ``DIR/slurm/{generate,execute}.sbatch`` (plain scripts a user
can read and resubmit by hand), submits them with ``sbatch --parsable`` and records the job ids in
``DIR/slurm/jobs.json``. Each execute task first merges its checkpoint's shard files, then judges them.
``capforecast wait --out DIR`` (or ``wait_for_jobs``) polls ``scontrol`` until both arrays have left the queue.
"""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.arguments import one_run_dir, positive_int
from pipeline.config import DEFAULT_CONFIG
from pipeline.errors import UserError
from pipeline.records import atomic_write_json, atomic_write_text, read_json
from pipeline.rundir import RunDir

FAILED_STATES = {"FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL",
                 "DEADLINE"}


@dataclass(frozen=True)
class SlurmSettings:
    """Resources and placement of the two arrays."""

    shards: int = 1
    partition: str | None = None
    gpus_per_task: int = 1
    cpus_per_generate: int = 4
    cpus_per_execute: int = 4
    time_limit: str | None = None
    sandbox: str | None = None
    workers: int | None = None
    max_parallel: int | None = None
    extra: list[str] = field(default_factory=list)
    python: str = sys.executable


def _header(name: str, out_dir: Path, array: str, cpus: int, s: SlurmSettings, gpus: int) -> list[str]:
    lines = ["#!/bin/bash", f"#SBATCH --job-name={name}", f"#SBATCH --array={array}",
             f"#SBATCH --output={RunDir(out_dir).slurm_logs / (name + '-%A_%a.out')}",
             "#SBATCH --ntasks=1", f"#SBATCH --cpus-per-task={cpus}"]
    if gpus:
        lines.append(f"#SBATCH --gres=gpu:{gpus}")
    if s.partition:
        lines.append(f"#SBATCH --partition={s.partition}")
    if s.time_limit:
        lines.append(f"#SBATCH --time={s.time_limit}")
    lines += [f"#SBATCH {x}" for x in s.extra]
    package_root = shlex.quote(str(Path(__file__).resolve().parent.parent))
    return lines + ["set -euo pipefail", f"cd {shlex.quote(str(Path.cwd()))}",
                    "export CAPFORECAST_PROGRESS=0 PYTHONUNBUFFERED=1",
                    f'export PYTHONPATH={package_root}"${{PYTHONPATH:+:$PYTHONPATH}}"']


def _array(count: int, s: SlurmSettings) -> str:
    return f"0-{count - 1}" + (f"%{s.max_parallel}" if s.max_parallel else "")


def write_scripts(config: Path, family, out_dir: Path, s: SlurmSettings,
                  plan: Path | None = None) -> tuple[Path, Path, list[str]]:
    """Write generate.sbatch and execute.sbatch under out_dir/slurm; return their paths and the checkpoints."""
    from pipeline.problems import resolve_benchmark

    if s.shards < 1:
        raise UserError(f"--shards must be at least 1, got {s.shards}")
    names = [c.name for c in family.checkpoints]
    if plan is not None:
        from pipeline.generate.stage import read_plan
        planned = read_plan(plan)
        names = [n for n in names if n in planned]
    if not names:
        raise UserError("nothing to submit: no checkpoint of the family is in the plan")
    q = lambda p: shlex.quote(str(p))  # noqa: E731
    run = RunDir(out_dir)
    cli = f"{q(s.python)} -m pipeline.cli"
    common = f"--config {q(config.resolve())} --family {q(family.name)} --out {q(out_dir)}"
    gen = _header(f"capf-gen-{family.name}", out_dir, _array(s.shards, s), s.cpus_per_generate, s, s.gpus_per_task)
    gen.append(f"exec {cli} generate {common} --shard \"$SLURM_ARRAY_TASK_ID/{s.shards}\""
               + (f" --plan {q(plan.resolve())}" if plan else ""))
    problems = resolve_benchmark(family.benchmark, family.base_dir)
    ex = _header(f"capf-exec-{family.name}", out_dir, _array(len(names), s), s.cpus_per_execute, s, 0)
    ex += [f"CHECKPOINTS=({' '.join(q(n) for n in names)})", 'CKPT="${CHECKPOINTS[$SLURM_ARRAY_TASK_ID]}"',
           f"{cli} generate {common} --merge --checkpoint \"$CKPT\"",
           f"exec {cli} execute --samples {q(run.samples_dir)}/\"$CKPT\".jsonl "
           f"--out {q(run.verdicts_dir)}/\"$CKPT\".jsonl --problems {q(problems)}"
           + (f" --sandbox {q(s.sandbox)}" if s.sandbox else "")
           + (f" --workers {s.workers}" if s.workers else "")]
    run.slurm_logs.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run.sbatch("generate"), "\n".join(gen) + "\n")
    atomic_write_text(run.sbatch("execute"), "\n".join(ex) + "\n")
    return run.sbatch("generate"), run.sbatch("execute"), names


def sbatch(args: list[str]) -> str:
    """Run sbatch --parsable; return the job id or raise UserError with Slurm's message."""
    try:
        done = subprocess.run(["sbatch", "--parsable", *args], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise UserError("sbatch not found: run 'capforecast submit' on a Slurm login node "
                        "(or use 'capforecast run' to run locally)") from None
    if done.returncode != 0:
        raise UserError(f"sbatch {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip().split(";")[0]


def submit(config: str | Path, family, out_dir: str | Path, settings: SlurmSettings,
           plan: str | Path | None = None) -> dict:
    """Write both scripts, submit generate then execute with --dependency=afterok; record jobs.json."""
    out_dir = Path(out_dir).resolve()
    gen_script, ex_script, names = write_scripts(Path(config), family, out_dir, settings,
                                                 Path(plan) if plan else None)
    gen_id = sbatch([str(gen_script)])
    ex_id = sbatch([f"--dependency=afterok:{gen_id}", "--kill-on-invalid-dep=yes", str(ex_script)])
    jobs = {"generate": gen_id, "execute": ex_id, "checkpoints": names, "shards": settings.shards,
            "settings": {k: v for k, v in asdict(settings).items() if k != "python"},
            "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic_write_json(RunDir(out_dir).slurm_jobs, jobs)
    return jobs


def job_states(job_id: str) -> list[str] | None:
    """States of every task of a job (array tasks included), or None once Slurm has forgotten it."""
    done = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        if "Invalid job id" in done.stderr:
            return None
        raise UserError(f"scontrol show job {job_id} failed: {done.stderr.strip()}")
    return re.findall(r"\bJobState=(\S+)", done.stdout)


def wait_for_jobs(out_dir: str | Path, *, poll_seconds: float = 5.0, timeout: float | None = None) -> dict:
    """Block until the submitted arrays finish; raise UserError naming the logs if a task failed."""
    run = RunDir(out_dir)
    path = run.slurm_jobs
    if not path.exists():
        raise UserError(f"{path}: no submission recorded here (run 'capforecast submit --out {out_dir}' first)")
    jobs = read_json(path)
    deadline = None if timeout is None else time.monotonic() + timeout
    final: dict[str, list[str]] = {}
    while True:
        for stage in ("generate", "execute"):
            states = job_states(jobs[stage])
            final[stage] = states if states is not None else ["FORGOTTEN"]
        running = [st for states in final.values() for st in states if st not in FAILED_STATES
                   and st not in ("COMPLETED", "FORGOTTEN")]
        if not running:
            break
        if deadline is not None and time.monotonic() > deadline:
            raise UserError(f"Slurm jobs {jobs['generate']}, {jobs['execute']} still running after {timeout:.0f}s")
        time.sleep(poll_seconds)
    bad = {stage: sorted(set(st) & FAILED_STATES) for stage, st in final.items() if set(st) & FAILED_STATES}
    if bad:
        raise UserError(f"Slurm tasks failed ({bad}); see {run.slurm_logs}; resubmitting resumes")
    missing = [n for n in jobs["checkpoints"] if not run.verdicts(n).exists()]
    if missing:
        raise UserError(f"Slurm jobs ended but verdicts are missing for: {', '.join(missing)}; see {run.slurm_logs}")
    return {"jobs": jobs, "states": final}


def register(subparsers) -> None:
    sub = subparsers.add_parser(
        "submit", help="submit generate (GPU) and execute (CPU) as Slurm arrays",
        description="Write sbatch scripts under RUN_DIR/slurm/ and submit a generate array (GPU) and an execute "
                    "array that starts after it (afterok); prints the job ids as JSON. `capforecast wait RUN_DIR` "
                    "blocks until both end; `capforecast run RUN_DIR` then counts, fits and reports.")
    sub.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="run directory, on a file system the nodes share")
    sub.add_argument("--config", default=DEFAULT_CONFIG,
                     help="checkpoints.yaml (default: ./checkpoints.yaml, else the packaged reference family)")
    sub.add_argument("--family", help="family name (default: the file's default_family)")
    sub.add_argument("--out", default=None, help="the run directory (same as RUN_DIR; older spelling)")
    sub.add_argument("--shards", type=int, default=1, help="generate array size (default: %(default)s)")
    sub.add_argument("--plan", help="plan JSON: generate only its requests")
    sub.add_argument("--partition", help="Slurm partition (default: the cluster's default)")
    sub.add_argument("--gpus-per-task", type=int, default=1, help="GPUs per generate task; 0 for CPU-only generation")
    sub.add_argument("--cpus-per-generate", type=positive_int, default=4, help="CPUs per generate task (default 4)")
    sub.add_argument("--cpus-per-execute", type=positive_int, default=4, help="CPUs per execute task (default 4)")
    sub.add_argument("--time", dest="time_limit", help="Slurm time limit per task, e.g. 4:00:00")
    sub.add_argument("--sandbox", help="sandbox for the execute stage (default: the execute stage's)")
    sub.add_argument("--workers", type=positive_int, help="execute workers per task")
    sub.add_argument("--max-parallel", type=int, help="at most this many array tasks at once")
    sub.add_argument("--sbatch-option", action="append", default=[], dest="extra",
                     help="extra '#SBATCH' line, e.g. --sbatch-option=--account=abc (repeatable)")
    sub.add_argument("--wait", action="store_true", help="block until both arrays have finished")
    sub.set_defaults(func=_submit_main)
    wait = subparsers.add_parser(
        "wait", help="wait for the Slurm jobs submitted for a run directory",
        description="Poll scontrol until the generate and execute arrays recorded in RUN_DIR/slurm/jobs.json "
                    "have ended; print their final states as JSON; fail if any task failed or verdicts are missing.")
    wait.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="run directory given to `capforecast submit`")
    wait.add_argument("--out", default=None, help="the run directory (same as RUN_DIR; older spelling)")
    wait.add_argument("--timeout", type=float, help="give up after this many seconds (default: wait forever)")
    wait.set_defaults(func=_wait_main)


def _run_dir(args) -> str:
    run_dir = one_run_dir(args.run_dir, args.out)
    if not run_dir:
        raise UserError(f"give the run directory: capforecast {args.command} RUN_DIR")
    return run_dir


def _submit_main(args) -> int:
    from pipeline.config import load_config

    args.out = _run_dir(args)
    family = load_config(args.config).family(args.family)
    settings = SlurmSettings(shards=args.shards, partition=args.partition, gpus_per_task=args.gpus_per_task,
                             cpus_per_generate=args.cpus_per_generate, cpus_per_execute=args.cpus_per_execute,
                             time_limit=args.time_limit, sandbox=args.sandbox, workers=args.workers,
                             max_parallel=args.max_parallel, extra=args.extra)
    jobs = submit(args.config, family, args.out, settings, args.plan)
    print(json.dumps(jobs))
    if args.wait:
        print(json.dumps(wait_for_jobs(args.out)["states"]))
    return 0


def _wait_main(args) -> int:
    args.out = _run_dir(args)
    print(json.dumps(wait_for_jobs(args.out, timeout=args.timeout)["states"]))
    return 0
