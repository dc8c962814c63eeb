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

from pipeline.arguments import one_run_dir, positive_int
from pipeline.config import DEFAULT_CONFIG, Family, field_error, load_config
from pipeline.errors import InfrastructureError, UserError
from pipeline.problems import load_problems, problems_digest, resolve_benchmark
from pipeline.records import make_run_dir, read_pass_counts, write_pass_counts
from pipeline.rundir import RunDir
from pipeline.rundir.manifest import Manifest, ProblemSet, SandboxRecord
from pipeline.rundir.resume import SKIPPED, inputs_digest, run_stage
from sandbox.api import SandboxUnavailable


def log(message: str) -> None:
    print(f"[capforecast {datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def check_forecastable(config, family: Family) -> None:
    """Raise ConfigError (file, line, field) before any compute when the family cannot be forecast: an unknown
    fit method, a target below the checkpoints, or fewer than 3 checkpoints below it."""
    from pipeline.forecast.methods import METHODS

    method = family.fit.method
    problems = [] if method in METHODS.choices() else [(("fit", "method"), METHODS.unknown(method))]
    problems += family.forecast_problems()
    if problems:
        raise field_error(config, family, *problems[0])


def start_manifest(run: RunDir, config_path: Path, family: Family, problems: dict, benchmark: Path,
                   limit: int | None = None) -> Manifest:
    """Create manifest.json, or check that an existing one describes the same family and problems."""
    digest = problems_digest(problems)
    if run.has_manifest():
        manifest = run.read_manifest()
        if (manifest.config_digest, manifest.problems.digest) != (family.digest(), digest):
            fields = differences(manifest.family_config.model_dump(mode="json"), family.model_dump(mode="json"))
            if manifest.problems.digest != digest:
                fields.append(f"problems ({manifest.problems.count} stored, {len(problems)} "
                              f"now: another benchmark file or --limit)")
            raise UserError(f"{run.manifest}: this run directory was made with other settings; differing: "
                            f"{'; '.join(fields[:6]) or 'the family config'}. Resume it with the same "
                            f"checkpoints.yaml and --limit, or give a new run directory")
        return manifest
    manifest = Manifest.start(family, config_path, ProblemSet(path=str(Path(benchmark).resolve()), digest=digest,
                                                              count=len(problems), limit=limit))
    run.write_manifest(manifest)
    return manifest


def differences(old, new, prefix: str = "") -> list[str]:
    """'sampling.n: 20 -> 10' for every leaf that differs between two JSON-like values."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in dict.fromkeys([*old, *new]):
            out += differences(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else str(key))
        return out
    return [] if old == new else [f"{prefix or 'config'}: {json.dumps(old)} -> {json.dumps(new)}"]


RESULTS = Path("results")   # where a run without a directory goes: results/<family>-<UTC timestamp>/


def run_family(config_path: Path, family_name: str | None, out: Path | None, slurm=None,
               limit: int | None = None, new: bool = False) -> Path:
    """Run every stage for one family; return the run directory.

    Without ``out``, the latest unfinished run of the same config, family and problems under results/ is resumed
    (and the log says so), unless ``new``. One process at a time works on a run directory (pipeline.lock).
    With ``slurm`` (a pipeline.slurm.SlurmSettings), sampling and execution run as Slurm array jobs;
    this process waits for them, then counts, fits and reports (the local stages find no work left).
    """
    from pipeline.lock import WriterLock

    config = load_config(config_path)
    config_path = Path(config.path).resolve()   # the packaged reference family when no checkpoints.yaml is here
    family = config.family(family_name)
    check_forecastable(config, family)      # semantic errors before any compute is spent
    benchmark = resolve_benchmark(family.benchmark, family.base_dir)
    problems = load_problems(benchmark, limit)
    run = RunDir(out or _new_or_unfinished(family, problems, limit, new))
    make_run_dir(run.path, "--out")
    with WriterLock(run.path, f"run directory {run.path}"):
        manifest = start_manifest(run, config_path, family, problems, benchmark, limit)
        log(f"run {family.name}: {len(family.checkpoints)} checkpoints x {len(problems)} problems "
            f"x n={family.sampling.n} -> {run.path}")
        try:
            _stages(run, family, problems, manifest, config_path, slurm)
        except KeyboardInterrupt:
            log(f"interrupted: everything computed so far is kept in {run.path}; resume with "
                f"`capforecast run {run.path}` (or the same command without a directory)")
            raise
    return run.path


def _new_or_unfinished(family: Family, problems: dict, limit: int | None, new: bool) -> Path:
    """results/<family>-<UTC timestamp>, or the latest unfinished run of the same config and problems."""
    from pipeline.rundir.resume import latest_unfinished

    found = None if new else latest_unfinished(RESULTS, family, problems_digest(problems), limit)
    if found is None:
        return RESULTS / f"{family.name}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
    log(f"resuming {found[0]}: the latest unfinished run of this config and family (started {found[1]}); "
        f"--new starts a fresh run directory instead")
    return found[0]


def _stages(run: RunDir, family: Family, problems: dict, manifest: Manifest, config_path: Path, slurm) -> None:
    from pipeline.forecast.fit import FitOptions

    if slurm is not None:
        on_slurm(config_path, family, run, slurm, manifest)
    options = FitOptions.from_family(family)   # forecast.json, the registered forecast and the backtest alike
    target = family.target.checkpoint
    smaller = [c for c in sorted(family.checkpoints, key=lambda c: c.compute) if c.name != target]
    sample(run, family, smaller, problems, manifest)
    if target is not None:
        write_counts(run, family, exclude={target})
        register_before_target(run, options)
        sample(run, family, [family.checkpoint(target)], problems, manifest)
    write_counts(run, family, exclude=set())
    forecast_stage(run, family, manifest, options)
    loss_stage(run, family, manifest)
    backtest_stage(run, manifest, options)
    score_stage(run, manifest)
    from pipeline.report.stage import write_report

    results = [run.pass_counts, run.forecast, run.loss, run.backtest, run.forecasts_dir, run.verdicts_dir]
    if run_stage(manifest, run, "report", inputs_digest(*results), run.report_md, write_report, run.path,
                 log=log) is not SKIPPED:
        log(f"report: {run.report_md}")


def on_slurm(config_path: Path, family: Family, run: RunDir, settings, manifest: Manifest) -> None:
    """Submit generate + execute arrays (once; a rerun only waits) and block until they finish."""
    from pipeline.slurm import submit, wait_for_jobs

    if not run.slurm_jobs.exists():
        settings = replace(settings, sandbox=settings.sandbox or pinned_backend(manifest, family),
                           workers=settings.workers or family.sandbox.workers)
        jobs = submit(config_path, family, run.path, settings)
        log(f"submitted Slurm arrays: generate {jobs['generate']}, execute {jobs['execute']} (afterok)")
    log("waiting for the Slurm jobs (rerun the same command to resume waiting)")
    manifest.slurm = _timed(manifest, run, "slurm", wait_for_jobs, run.path)
    run.write_manifest(manifest)


def _timed(manifest: Manifest, run: RunDir, stage: str, fn, *args, worked=lambda result: True):
    """fn(*args), its time recorded in the manifest unless it did no work where a time is recorded already
    (a resumed stage's no-op never overwrites the time of the run that did the work)."""
    start = time.perf_counter()
    result = fn(*args)
    if worked(result) or stage not in manifest.stages:
        manifest.record_stage(stage, time.perf_counter() - start)
        run.write_manifest(manifest)
    return result


def sample(run: RunDir, family: Family, checkpoints: list, problems: dict, manifest: Manifest) -> None:
    """Every sample of these checkpoints, generated and judged: n per problem, or adaptive rounds."""
    if family.sampling.adaptive is not None:
        sample_in_rounds(run, family, checkpoints, problems, manifest)
    else:
        for ckpt in checkpoints:
            sample_and_judge(run, family, ckpt, problems, manifest)


def sample_in_rounds(run: RunDir, family: Family, checkpoints: list, problems: dict, manifest: Manifest) -> dict:
    """Pilot, allocate once, then sample in rounds until every cell met its rule or max_rounds; a summary.

    pipeline.sampling.rounds plans each round from the verdicts so far; this loop samples and judges it."""
    from pipeline.sampling.rounds import (design_for, judged_counts, log as log_round, next_round, no_progress,
                                          passuntil_estimates, requests_by_checkpoint)

    design = design_for(run, family)
    max_rounds = family.sampling.adaptive.max_rounds
    tasks = sorted(problems)
    summary = {"checkpoints": [c.name for c in checkpoints], "rounds": 0, "samples": 0, "done": False}
    judged = None
    for _ in range(max_rounds + 1):
        counts = judged_counts(run, checkpoints, tasks)
        if judged is not None and sum(c.n for c in counts) <= judged:
            raise no_progress(run)
        judged = sum(c.n for c in counts)
        plan = next_round(run, counts, design)
        if plan.done:
            summary["done"] = True
            break
        if summary["rounds"] == max_rounds:
            break
        wanted, new = requests_by_checkpoint(plan), plan.to_json()["new_samples"]
        log_round(f"round {summary['rounds'] + 1}: {new} new sample(s) over {len(plan.requests)} cell(s)")
        for ckpt in checkpoints:
            if ckpt.name in wanted:
                sample_and_judge(run, family, ckpt, problems, manifest, requests=wanted[ckpt.name])
        summary["rounds"] += 1
        summary["samples"] += new
    if not summary["done"]:
        summary["note"] = (f"stopped after max_rounds = {max_rounds} with cells still sampling; rerun "
                           f"`capforecast run --out {run.path}` to continue (the design is kept) or raise max_rounds")
        log_round(summary["note"])
    if run.verdict_files():
        estimates = passuntil_estimates(run, manifest)
        summary["cells"], summary["passuntil_prediction"] = estimates["cells"], estimates["prediction"]
    manifest.record_adaptive("+".join(summary["checkpoints"]), summary)
    run.write_manifest(manifest)
    return summary


def sample_and_judge(run: RunDir, family: Family, ckpt, problems: dict, manifest: Manifest,
                     requests: dict[str, int] | None = None) -> None:
    from pipeline.execute import ExecuteOptions, execute_samples, report_summary
    from pipeline.generate.stage import generate_checkpoint

    samples, verdicts = run.samples(ckpt.name), run.verdicts(ckpt.name)
    gen = _timed(manifest, run, f"generate:{ckpt.name}", lambda: generate_checkpoint(
                 family, ckpt, problems, samples, requests=requests), worked=lambda g: g["generated"] > 0)
    if gen["generated"] > 0 or ckpt.name not in (manifest.generation or {}):
        manifest.record_generation(ckpt.name, gen)
    earlier = manifest.sandbox  # reuse this run's calibration when made under the same floor
    known = (earlier.calibrated_cpu_seconds or None
             if earlier is not None and earlier.limits.get("cpu_seconds") == family.sandbox.cpu_seconds else None)
    options = replace(ExecuteOptions.from_settings(family.sandbox, known_cpu_limits=known),
                      sandbox=pinned_backend(manifest, family))
    try:
        summary = _timed(manifest, run, f"execute:{ckpt.name}", execute_samples, samples, verdicts, problems, options,
                         worked=lambda s: s.executed_programs > 0)
    except SandboxUnavailable as exc:
        if earlier is None:
            raise
        version = earlier.version or "version not recorded"
        raise InfrastructureError(f"this run's verdicts were judged on {earlier.backend} ({version}; pinned in "
                                  f"{run.manifest} at its first execute), which is not available now: {exc} Start "
                                  f"it again and rerun `capforecast run {run.path}`: one run never mixes verdicts of "
                                  f"two sandboxes") from None
    if summary.backend:
        manifest.sandbox = SandboxRecord(backend=summary.backend, version=summary.backend_version or None,
                                         limits=summary.limits, calibration_rule=options.calibration_rule(),
                                         calibrated_cpu_seconds={**(known or {}), **summary.cpu_limits})
    run.write_manifest(manifest)
    if report_summary(verdicts, summary):
        raise InfrastructureError(f"{verdicts}: sandbox errors persisted; fix the sandbox (`capforecast sandbox "
                                  f"check`) and rerun `capforecast run {run.path}` to resume")


def pinned_backend(manifest: Manifest, family: Family) -> str:
    """The sandbox every execute of this run uses: the one its first execute used (manifest.json), so that
    ``auto`` cannot judge some checkpoints on docker and others on bwrap; before that, the family's setting."""
    return manifest.sandbox.backend if manifest.sandbox is not None else family.sandbox.backend


def write_counts(run: RunDir, family: Family, exclude: set[str]) -> None:
    from pipeline.counts import count_run

    computes = {c.name: c.compute for c in family.checkpoints if c.name not in exclude}
    write_pass_counts(run.pass_counts, count_run(run, computes))


def forecast_stage(run: RunDir, family: Family, manifest: Manifest, options) -> None:
    from pipeline.forecast.capability import forecast_or_error
    from pipeline.rundir.results import write_forecast

    def fit():
        counts = read_pass_counts(run.pass_counts)
        log(f"fit: the capability law over {len({c.checkpoint for c in counts})} checkpoints' pass counts")
        write_forecast(run.forecast, forecast_or_error(counts, family.target_name, family.target_compute, options))

    run_stage(manifest, run, "fit", inputs_digest(run.pass_counts, options, family.target_name,
                                                  family.target_compute), run.forecast, fit, log=log)


def register_before_target(run: RunDir, options) -> None:
    """Register the forecast made from the smaller checkpoints, before the target's samples exist."""
    from pipeline.forecast.register import register_forecast

    if run.registered():
        return
    try:
        path = register_forecast(run.path, options=options)
        log(f"registered forecast before evaluating the target: {path}")
    except UserError as exc:
        log(f"no forecast registered: {exc}")


def loss_stage(run: RunDir, family: Family, manifest: Manifest) -> None:
    from pipeline.forecast.loss import measure_and_fit_loss
    from pipeline.rundir.results import write_loss

    if not family.loss.enabled:
        return

    def loss():
        try:
            measure_and_fit_loss(family, run.path)
        except UserError as exc:
            write_loss(run.loss, {"error": str(exc)})
            log(f"loss law: {exc}")

    corpus = Path(family.base_dir) / family.loss.corpus if family.loss.corpus else None
    run_stage(manifest, run, "loss", inputs_digest(family.digest(), corpus), run.loss, loss, log=log)


def backtest_stage(run: RunDir, manifest: Manifest, options) -> None:
    from pipeline.config import MIN_FIT_CHECKPOINTS
    from pipeline.forecast.backtest import backtest
    from pipeline.rundir.results import write_backtest

    def held_out():
        counts = read_pass_counts(run.pass_counts)
        most = max(len({c.checkpoint for c in counts}) - MIN_FIT_CHECKPOINTS, 0)
        log(f"backtest: every method, holding out the largest 1..{most} checkpoints in turn (a few minutes on a "
            f"laptop)")
        try:
            result = backtest(counts, options)
        except UserError as exc:
            result = {"error": str(exc)}
        write_backtest(run.backtest, result)

    run_stage(manifest, run, "backtest", inputs_digest(run.pass_counts, options), run.backtest, held_out, log=log)


def score_stage(run: RunDir, manifest: Manifest) -> None:
    from pipeline.forecast.register import score_forecasts

    if run.registered():
        run_stage(manifest, run, "score", inputs_digest(run.pass_counts, *run.registered()), run.scores,
                  score_forecasts, run.path, log=log)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run", help="the whole job: generate, execute, count, fit, forecast, loss, backtest, report",
        description="Run every stage for one family of checkpoints.yaml and print the answer: the capability and "
                    "loss forecasts with their intervals, the actual when known, pass@1 per checkpoint, the "
                    "backtest's coverage and the report's path. Resumes when RUN_DIR is an existing run directory, or "
                    "without one the latest unfinished run of the same config and family (--new for a fresh one); "
                    "a second process on one run directory is refused. "
                    "Exit status 0: a forecast was made; 1: the run finished without one (the report says why); "
                    "2: bad input, nothing or little was computed; 3: the machine failed it (sandbox, disk), a "
                    "rerun resumes.")
    parser.add_argument("run_dir", nargs="?", type=Path, metavar="RUN_DIR",
                        help="run directory (default: the latest unfinished run of this config and family under "
                             "results/, else a new results/<family>-<UTC timestamp>/)")
    parser.add_argument("--new", action="store_true",
                        help="start a new run directory even when an unfinished run of this config exists")
    parser.add_argument("--out", type=Path, default=None, help="the run directory (same as RUN_DIR; older spelling)")
    parser.add_argument("--config", type=Path, default=Path(DEFAULT_CONFIG),
                        help="checkpoints.yaml to read (default: ./checkpoints.yaml, else the packaged reference "
                             "family)")
    parser.add_argument("--family", default=None, help="family name (default: the file's default_family)")
    parser.add_argument("--limit", type=positive_int, default=None, metavar="N",
                        help=f"use only the first N problems (a smoke run; recorded in {RunDir.MANIFEST})")
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

    run_dir = one_run_dir(args.run_dir, args.out)
    slurm = None
    if args.slurm is not None:
        from pipeline.slurm import SlurmSettings

        if args.limit:
            raise UserError("--limit is not supported with --slurm (the array jobs sample every problem)")
        slurm = SlurmSettings(shards=args.slurm, partition=args.partition, gpus_per_task=args.gpus_per_task,
                              cpus_per_generate=args.cpus_per_task, cpus_per_execute=args.cpus_per_task)
    if run_dir is not None and args.new:
        raise UserError(f"give a run directory ({run_dir}) or --new, not both")
    run_dir = run_family(args.config, args.family, run_dir, slurm, limit=args.limit, new=args.new)
    summary = run_summary(run_dir)
    print(json.dumps(summary, indent=None) if args.json else format_summary(summary))
    return 0 if summary["forecast"].get("value") is not None else 1
