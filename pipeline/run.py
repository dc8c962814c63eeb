"""The whole job for one family: generate -> execute -> count -> fit/forecast -> loss -> report.

Each stage writes into the run directory and resumes from what is already there, so an
interrupted ``capforecast run --out DIR`` continues where it stopped. The forecast is
registered from the smaller checkpoints before the target's samples exist.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from pipeline.arguments import positive_int
from pipeline.config import DEFAULT_CONFIG, Family, field_error, load_config
from pipeline.errors import UserError
from pipeline.manifest import code_version, package_versions, read_manifest, utc_now
from pipeline.problems import load_problems, problems_digest, resolve_benchmark
from pipeline.records import atomic_write_json, make_run_dir, write_pass_counts


def log(message: str) -> None:
    print(f"[capforecast {datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def check_forecastable(config, family: Family) -> None:
    """Raise ConfigError (file, line, field) before any compute when the family cannot be forecast: an unknown
    fit method, a target below the checkpoints, or fewer than 3 checkpoints below it."""
    from pipeline.forecast.methods import METHODS

    problems = [] if family.fit.method in METHODS.choices() else [(("fit", "method"), METHODS.unknown(family.fit.method))]
    problems += family.forecast_problems()
    if problems:
        raise field_error(config, family, *problems[0])


def start_manifest(run_dir: Path, config_path: Path, family: Family, problems: dict, benchmark: Path,
                   limit: int | None = None) -> dict:
    """Create manifest.json, or check that an existing one describes the same family and problems."""
    path = run_dir / "manifest.json"
    digest, pdigest = family.digest(), problems_digest(problems)
    if path.exists():
        manifest = read_manifest(run_dir)
        if (manifest.get("config_digest"), manifest.get("problems", {}).get("digest")) != (digest, pdigest):
            fields = differences(manifest.get("family_config") or {}, family.model_dump(mode="json"))
            if manifest.get("problems", {}).get("digest") != pdigest:
                fields.append(f"problems ({manifest.get('problems', {}).get('count', '?')} stored, {len(problems)} "
                              f"now: another benchmark file or --limit)")
            raise UserError(f"{path}: this run directory was made with other settings; differing: "
                            f"{'; '.join(fields[:6]) or 'the family config'}. Resume it with the same "
                            f"checkpoints.yaml and --limit, or give a new run directory")
        return manifest
    manifest = {
        "family": family.name,
        "config_path": str(Path(config_path).resolve()),
        "base_dir": str(Path(family.base_dir).resolve()),
        "config_digest": digest,
        "family_config": family.model_dump(mode="json"),
        "problems": {"path": str(Path(benchmark).resolve()), "digest": pdigest, "count": len(problems),
                     "limit": limit},
        "created_at": utc_now(),
        "code_version": code_version(),
        "packages": package_versions(),
        "checkpoints": [{"name": c.name, "model": family.model_location(c), "revision": c.revision,
                         "compute": c.compute, "is_target": c.name == family.target.checkpoint}
                        for c in family.checkpoints],
        "target": {"name": family.target_name, "compute": family.target_compute},
        "stages": {},
    }
    atomic_write_json(path, manifest)
    return manifest


def differences(old, new, prefix: str = "") -> list[str]:
    """'sampling.n: 20 -> 10' for every leaf that differs between two JSON-like values."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in dict.fromkeys([*old, *new]):
            out += differences(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else str(key))
        return out
    return [] if old == new else [f"{prefix or 'config'}: {json.dumps(old)} -> {json.dumps(new)}"]


def run_family(config_path: Path, family_name: str | None, out: Path | None, slurm=None,
               limit: int | None = None) -> Path:
    """Run every stage for one family; return the run directory.

    With ``slurm`` (a pipeline.slurm.SlurmSettings), sampling and execution run as Slurm array jobs;
    this process waits for them, then counts, fits and reports (the local stages find no work left).
    """
    config = load_config(config_path)
    config_path = Path(config.path).resolve()   # the packaged reference family when no checkpoints.yaml is here
    family = config.family(family_name)
    check_forecastable(config, family)      # semantic errors before any compute is spent
    run_dir = out or Path("results") / f"{family.name}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
    make_run_dir(run_dir, "--out")
    benchmark = resolve_benchmark(family.benchmark, family.base_dir)
    problems = load_problems(benchmark, limit)
    manifest = start_manifest(run_dir, config_path, family, problems, benchmark, limit)
    log(f"run {family.name}: {len(family.checkpoints)} checkpoints x {len(problems)} problems "
        f"x n={family.sampling.n} -> {run_dir}")
    if slurm is not None:
        on_slurm(config_path, family, run_dir, slurm, manifest)
    target = family.target.checkpoint
    smaller = [c for c in sorted(family.checkpoints, key=lambda c: c.compute) if c.name != target]
    if family.sampling.adaptive is not None:  # PassUntil rounds (pipeline/sampling/rounds.py) instead of a fixed n
        from pipeline.sampling.rounds import sample_in_rounds
        sample_in_rounds(run_dir, family, smaller, problems, manifest, sample_and_judge)
    else:
        for ckpt in smaller:
            sample_and_judge(run_dir, family, ckpt, problems, manifest)
    if target is not None:
        write_counts(run_dir, family, exclude={target})
        register_before_target(run_dir, manifest)
        if family.sampling.adaptive is not None:
            sample_in_rounds(run_dir, family, [family.checkpoint(target)], problems, manifest, sample_and_judge)
        else:
            sample_and_judge(run_dir, family, family.checkpoint(target), problems, manifest)
    write_counts(run_dir, family, exclude=set())
    forecast_stage(run_dir, family, manifest)
    loss_stage(run_dir, family, manifest)
    backtest_stage(run_dir, family, manifest)
    score_stage(run_dir, manifest)
    from pipeline.report.stage import write_report

    report = write_report(run_dir)
    log(f"report: {report}")
    return run_dir


def on_slurm(config_path: Path, family: Family, run_dir: Path, settings, manifest: dict) -> None:
    """Submit generate + execute arrays (once; a rerun only waits) and block until they finish."""
    from pipeline.slurm import submit, wait_for_jobs

    if not (run_dir / "slurm" / "jobs.json").exists():
        settings = replace(settings, sandbox=settings.sandbox or family.sandbox.backend,
                           workers=settings.workers or family.sandbox.workers)
        jobs = submit(config_path, family, run_dir, settings)
        log(f"submitted Slurm arrays: generate {jobs['generate']}, execute {jobs['execute']} (afterok)")
    log("waiting for the Slurm jobs (rerun the same command to resume waiting)")
    manifest["slurm"] = _timed(manifest, run_dir, "slurm", wait_for_jobs, run_dir)


def _timed(manifest: dict, run_dir: Path, stage: str, fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    manifest["stages"][stage] = {"seconds": round(time.perf_counter() - start, 2), "finished_at": utc_now()}
    atomic_write_json(run_dir / "manifest.json", manifest)
    return result


def sample_and_judge(run_dir: Path, family: Family, ckpt, problems: dict, manifest: dict,
                     requests: dict[str, int] | None = None) -> None:
    from pipeline.execute import ExecuteOptions, execute_samples, report_summary
    from pipeline.generate.stage import generate_checkpoint

    samples = run_dir / "samples" / f"{ckpt.name}.jsonl"
    verdicts = run_dir / "verdicts" / f"{ckpt.name}.jsonl"
    gen = _timed(manifest, run_dir, f"generate:{ckpt.name}", lambda: generate_checkpoint(
                 family, ckpt, problems, samples, requests=requests))
    manifest.setdefault("generation", {})[ckpt.name] = gen
    s = family.sandbox
    earlier = manifest.get("sandbox", {})  # reuse this run's calibration when made under the same floor
    known = (earlier.get("calibrated_cpu_seconds") or None
             if earlier.get("limits", {}).get("cpu_seconds") == s.cpu_seconds else None)
    options = ExecuteOptions(sandbox=s.backend, workers=s.workers, cpu_seconds=s.cpu_seconds,
                             wall_seconds=s.wall_seconds, memory_mb=s.memory_mb, calibrate=s.calibrate,
                             known_cpu_limits=known)
    summary = _timed(manifest, run_dir, f"execute:{ckpt.name}", execute_samples,
                     samples, verdicts, problems, options)
    if summary.backend:
        from sandbox.calibrate import FACTOR

        manifest["sandbox"] = {"backend": summary.backend, "limits": summary.limits,
                               "calibration_rule": (f"cpu limit = max({options.cpu_seconds} CPU-s, {FACTOR} x "
                                                    f"canonical solution CPU time)" if options.calibrate
                                                    else "none: one cpu limit for all problems"),
                               "calibrated_cpu_seconds": {**(known or {}), **summary.cpu_limits}}
    atomic_write_json(run_dir / "manifest.json", manifest)
    if report_summary(verdicts, summary):
        raise UserError(f"{verdicts}: sandbox errors persisted; fix the sandbox (`capforecast sandbox check`) "
                        f"and rerun `capforecast run --out {run_dir}` to resume")


def write_counts(run_dir: Path, family: Family, exclude: set[str]) -> None:
    from pipeline.counts import count_run

    computes = {c.name: c.compute for c in family.checkpoints if c.name not in exclude}
    write_pass_counts(run_dir / "pass_counts.csv", count_run(run_dir, computes))


def fit_options(family: Family):
    from pipeline.forecast.fit import FitOptions

    f = family.fit
    return FitOptions(level=f.level, method=f.method, max_fit_compute_fraction=f.max_fit_compute_fraction,
                      buckets=f.buckets, bootstrap=f.bootstrap,
                      target_n=None if family.sampling.adaptive else family.sampling.n)


def forecast_stage(run_dir: Path, family: Family, manifest: dict) -> None:
    from pipeline.forecast.capability import forecast_from_counts
    from pipeline.records import read_pass_counts

    counts = read_pass_counts(run_dir / "pass_counts.csv")
    log(f"fit: the capability law over {len({c.checkpoint for c in counts})} checkpoints' pass counts")
    try:
        forecast = _timed(manifest, run_dir, "fit", forecast_from_counts, counts, family.target_name,
                          family.target_compute, fit_options(family))
    except UserError as exc:
        forecast = {"error": str(exc), "target": {"name": family.target_name,
                                                  "compute": family.target_compute}}
    atomic_write_json(run_dir / "forecast.json", forecast)


def register_before_target(run_dir: Path, manifest: dict) -> None:
    """Register the forecast made from the smaller checkpoints, before the target's samples exist."""
    from pipeline.forecast.register import register_forecast

    if any((run_dir / "forecasts").glob("*.json")):
        return
    try:
        path = register_forecast(run_dir)
        log(f"registered forecast before evaluating the target: {path}")
    except UserError as exc:
        log(f"no forecast registered: {exc}")


def loss_stage(run_dir: Path, family: Family, manifest: dict) -> None:
    from pipeline.forecast.loss import measure_and_fit_loss

    if not family.loss.enabled:
        return
    try:
        _timed(manifest, run_dir, "loss", measure_and_fit_loss, family, run_dir)
    except UserError as exc:
        atomic_write_json(run_dir / "loss.json", {"error": str(exc)})
        log(f"loss law: {exc}")


def backtest_stage(run_dir: Path, family: Family, manifest: dict) -> None:
    from pipeline.forecast.backtest import backtest_counts
    from pipeline.records import read_pass_counts

    counts = read_pass_counts(run_dir / "pass_counts.csv")
    log(f"backtest: every method, holding out the largest 1..{max(len({c.checkpoint for c in counts}) - 3, 0)} "
        f"checkpoints in turn (a few minutes on a laptop)")
    try:
        result = _timed(manifest, run_dir, "backtest", backtest_counts, counts, fit_options(family))
    except UserError as exc:
        result = {"error": str(exc)}
    atomic_write_json(run_dir / "backtest.json", result)


def score_stage(run_dir: Path, manifest: dict) -> None:
    from pipeline.forecast.register import score_forecasts

    if any((run_dir / "forecasts").glob("*.json")):
        score_forecasts(run_dir)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run", help="the whole job: generate, execute, count, fit, forecast, loss, backtest, report",
        description="Run every stage for one family of checkpoints.yaml and print the answer: the capability and "
                    "loss forecasts with their intervals, the actual when known, pass@1 per checkpoint, the "
                    "backtest's coverage and the report's path. Resumes when RUN_DIR is an existing run directory. "
                    "Exit status 0: a forecast was made; 1: the run finished without one (the report says why); "
                    "2: bad input, nothing or little was computed.")
    parser.add_argument("run_dir", nargs="?", type=Path, metavar="RUN_DIR",
                        help="run directory (default: results/<family>-<UTC timestamp>/)")
    parser.add_argument("--out", type=Path, default=None, help="the run directory (same as RUN_DIR; older spelling)")
    parser.add_argument("--config", type=Path, default=Path(DEFAULT_CONFIG),
                        help="checkpoints.yaml to read (default: ./checkpoints.yaml, else the packaged reference "
                             "family)")
    parser.add_argument("--family", default=None, help="family name (default: the file's default_family)")
    parser.add_argument("--limit", type=positive_int, default=None, metavar="N",
                        help="use only the first N problems (a smoke run; recorded in manifest.json)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    parser.add_argument("--slurm", type=positive_int, metavar="SHARDS", default=None,
                        help="sample and execute as Slurm array jobs with SHARDS problem shards per checkpoint, "
                             "wait for them, then fit and report here")
    parser.add_argument("--partition", default=None, help="Slurm partition (with --slurm)")
    parser.add_argument("--gpus-per-task", type=int, default=1, help="GPUs per generate task (with --slurm)")
    parser.add_argument("--cpus-per-task", type=positive_int, default=4,
                        help="CPUs per generate and per execute task (with --slurm)")
    parser.set_defaults(func=_main)


def _main(args) -> int:
    from pipeline.summary import format_summary, run_summary

    if args.run_dir and args.out and args.run_dir != args.out:
        raise UserError(f"two run directories given: {args.run_dir} and --out {args.out}")
    slurm = None
    if args.slurm is not None:
        from pipeline.slurm import SlurmSettings

        if args.limit:
            raise UserError("--limit is not supported with --slurm (the array jobs sample every problem)")
        slurm = SlurmSettings(shards=args.slurm, partition=args.partition, gpus_per_task=args.gpus_per_task,
                              cpus_per_generate=args.cpus_per_task, cpus_per_execute=args.cpus_per_task)
    run_dir = run_family(args.config, args.family, args.out or args.run_dir, slurm, limit=args.limit)
    summary = run_summary(run_dir)
    print(json.dumps(summary, indent=None) if args.json else format_summary(summary))
    return 0 if summary["forecast"].get("value") is not None else 1
