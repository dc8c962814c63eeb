"""Capability fit and forecast: -E_P[log pass_rate(C)] = alpha * C^(-k), per bucket and overall.

``forecast_from_counts`` turns pass counts into the forecast JSON (docs/forecasting.md has every field);
``capforecast fit`` runs it on a run directory or a bare pass-counts CSV. The target checkpoint, when its
counts are present, is never used in the fit: only to report ``actual``.
"""
from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import UserError
from pipeline.records import PassCount

HUMANEVAL_PROBLEMS, HUMANEVAL_HARDEST = 164, 15


@dataclass
class FitOptions:
    """How to fit: interval level, which checkpoints and method, buckets, bootstrap size, seed."""

    level: float = 0.9
    max_fit_compute_fraction: float | None = None   # use only checkpoints with compute <= fraction * target
    method: str = "default"                          # "default", "aggregate" (the report's), "per-problem"
    buckets: int = 6
    hardest_excluded: int | None = None              # H; None = 15/164 of the problem count
    bootstrap: int = 1000
    seed: int = 0
    alternatives: bool = True                        # also report the other methods' forecasts
    target_n: int | None = None                      # samples per problem the target will be measured with,
                                                     # when its counts are not in the input yet


@dataclass
class FitData:
    """The fit's inputs after choosing target, fit checkpoints and the P/M restriction."""

    table: object            # estimate.CountTable over fit checkpoints (all problems)
    target_name: str | None
    target_compute: float
    target_table: object | None   # the target's own counts, when present
    restriction: object      # estimate.Restriction
    excluded: list[dict]
    all_table: object = None  # every checkpoint in the input (for the report's points)


def prepare(counts: list[PassCount], target_name: str | None, target_compute: float | None,
            options: FitOptions) -> FitData:
    """Choose the target and the fit checkpoints, and apply the report's P/M rule."""
    from pipeline.estimate import count_table, restrict_solved_by_all

    table = count_table(counts)
    if target_name is not None and target_name not in table.checkpoints and target_compute is None:
        raise UserError(f"target {target_name!r} is not in the pass counts; give --target-compute for a "
                        f"model without counts (checkpoints: {', '.join(table.checkpoints)})")
    if target_name is None and target_compute is None:
        target_name = table.checkpoints[int(np.argmax(table.compute))]
    if target_name is None:
        same = [c for c, x in zip(table.checkpoints, table.compute) if np.isclose(x, target_compute, rtol=1e-9)]
        target_name = same[0] if same else None
    if target_compute is None:
        target_compute = float(table.compute[table.checkpoints.index(target_name)])
    if not target_compute > 0:
        raise UserError(f"target compute must be positive FLOPs, got {target_compute}")
    excluded, fit_names = [], []
    limit = target_compute * options.max_fit_compute_fraction if options.max_fit_compute_fraction else None
    for name, compute in zip(table.checkpoints, table.compute):
        if name == target_name:
            excluded.append({"kind": "model", "id": name, "reason": "is the target (never used in the fit)"})
        elif compute >= target_compute:
            excluded.append({"kind": "model", "id": name, "reason": "compute not below the target's"})
        elif limit is not None and compute > limit:
            excluded.append({"kind": "model", "id": name,
                             "reason": f"compute above {options.max_fit_compute_fraction:g} x target"})
        else:
            fit_names.append(name)
    if len(fit_names) < 3:
        raise UserError(f"need at least 3 checkpoints below the target to fit alpha and k; got {len(fit_names)}"
                        f" ({', '.join(fit_names) or 'none'})")
    fit_table = table.select(fit_names)
    restriction = restrict_solved_by_all(fit_table)
    excluded += restriction.excluded
    if len(restriction.models) < 3:
        raise UserError(f"need at least 3 checkpoints that solve some problem; got {len(restriction.models)}")
    if not restriction.problems:
        raise UserError("no problem qualifies: none is solved at least once by every fit checkpoint "
                        f"({', '.join(restriction.models)}); draw more samples or drop the smallest checkpoints")
    target_table = table.select([target_name]) if target_name in table.checkpoints else None
    return FitData(fit_table, target_name, float(target_compute), target_table, restriction, excluded, table)


def run_method(method: str, table, models: list[str], problems: list[str], target_compute: float,
               options: FitOptions, seed_offset: int = 0):
    """Fit one method on the given models x problems; returns a fit_methods.MethodFit."""
    from pipeline.fit_methods import METHODS

    sub = table.select(models, problems)
    rng = np.random.default_rng([options.seed, seed_offset])
    x = np.log(sub.compute / target_compute)
    return METHODS[method](x, sub.n.astype(float), sub.passed.astype(float), options.level, options.bootstrap, rng)


def forecast_from_counts(counts: list[PassCount], target_name: str | None, target_compute: float | None,
                         options: FitOptions) -> dict:
    """The forecast JSON for the target; raises UserError (clear message) when no fit is possible."""
    from pipeline.buckets import bucket_forecasts
    from pipeline.fit_methods import METHODS, resolve_method
    from pipeline.problem_laws import falling_problems

    if not 0 < options.level < 1:
        raise UserError(f"interval level must be between 0 and 1, got {options.level}")
    method = resolve_method(options.method)
    data = prepare(counts, target_name, target_compute, options)
    models, problems = data.restriction.models, data.restriction.problems
    fit = run_method(method, data.table, models, problems, data.target_compute, options)
    model_table = data.table.select(models)
    x_all = np.log(model_table.compute / data.target_compute)
    falling = falling_problems(x_all, model_table.n.astype(float), model_table.passed.astype(float))
    out = {
        "method": method,
        "target": {"name": data.target_name, "compute": data.target_compute},
        "alpha": fit.alpha, "alpha_interval": list(fit.alpha_interval),
        "k": fit.k, "k_interval": list(fit.k_interval),
        "problems": problems, "models": models,
        "prediction": prediction_block(fit, data, problems, options),
    }
    actual = actual_value(data, problems, method, fit, options)
    if actual is not None:
        out["actual"] = actual
    out["points"] = checkpoint_points(data, problems, options)
    out["curve"] = [{"normalized_compute": float(np.exp(x)), "compute": float(np.exp(x) * data.target_compute),
                     "value": float(v), "interval": [float(lo), float(hi)]}
                    for x, v, lo, hi in zip(fit.curve_x, fit.curve, fit.curve_lo, fit.curve_hi)]
    out["law"] = fit.details | {"method": method}
    out["excluded"] = data.excluded
    out["non_monotone"] = [model_table.task_ids[i] for i in falling]
    out["buckets"], out["hardest_excluded"] = bucket_forecasts(data, method, options)
    if options.alternatives:
        out["alternatives"] = {}
        for other in METHODS:
            if other == method:
                continue
            try:
                alt = run_method(other, data.table, models, problems, data.target_compute, options)
                out["alternatives"][other] = {"alpha": alt.alpha, "k": alt.k, "prediction": {
                    "value": alt.prediction, "interval": list(alt.interval), "level": options.level}}
            except UserError as exc:
                out["alternatives"][other] = {"error": str(exc)}
    out["options"] = asdict(options)
    return out


def prediction_block(fit, data: FitData, problems: list[str], options: FitOptions) -> dict:
    """The forecast's value and interval, and (when the method gives pass-rate draws and the target's sample
    budget is known) the interval for what that budget will measure, which is what an actual is judged by."""
    from pipeline.fit_methods import measurement_interval

    block = {"value": fit.prediction, "interval": list(fit.interval), "level": options.level}
    n = target_sample_counts(data, problems, options)
    if fit.target_p_draws is not None and n is not None:
        band = measurement_interval(fit.target_p_draws, n, options.level, np.random.default_rng(options.seed + 7919))
        if band is not None:
            block["measurement_interval"] = list(band)
            block["measurement_n"] = int(n.max()) if n.min() == n.max() else [int(v) for v in n]
    return block


def target_sample_counts(data: FitData, problems: list[str], options: FitOptions) -> np.ndarray | None:
    """Samples per problem at the target: its counts when present, else ``options.target_n``, else None."""
    if data.target_table is not None:
        t = data.target_table
        if all(p in t.task_ids for p in problems):
            n = t.select(task_ids=problems).n[0].astype(float)
            return n if np.all(n > 0) else None
    return np.full(len(problems), float(options.target_n)) if options.target_n else None


def judged_interval(prediction: dict) -> list[float]:
    """The interval an actual value is judged by: the measurement interval when there is one."""
    return list(prediction.get("measurement_interval") or prediction["interval"])


def actual_value(data: FitData, problems: list[str], method: str, fit, options: FitOptions) -> dict | None:
    """The target's measured E_P[log(c/n)]; on the problems it solves, with the forecast redone on those."""
    from pipeline.estimate import log_pass_rate

    if data.target_table is None:
        return None
    t = data.target_table.select(task_ids=[p for p in problems if p in data.target_table.task_ids])
    solved = [task for task, n, c in zip(t.task_ids, t.n[0], t.passed[0]) if n > 0 and c > 0]
    missing = [p for p in problems if p not in solved]
    if not solved:
        return {"value": None, "n_problems": 0, "unsolved_by_target": missing,
                "note": "the target solves none of the fit problems at its sample budget"}
    s = t.select(task_ids=solved)
    actual = {"value": float(np.mean(np.log(s.passed[0] / s.n[0]))), "n_problems": len(solved),
              "unsolved_by_target": missing,
              "value_bias_corrected": float(np.mean(log_pass_rate(s.passed[0], s.n[0], bias_correction=True)))}
    if missing:
        same = run_method(method, data.table, data.restriction.models, solved, data.target_compute, options)
        actual["prediction_on_same_problems"] = prediction_block(same, data, solved, options)
        actual["note"] = ("the target never solved some fit problems at its sample budget (log 0); value and "
                          "prediction_on_same_problems use only the problems it solved")
    return actual


def checkpoint_points(data: FitData, problems: list[str], options: FitOptions) -> list[dict]:
    """Measured E_P[log(c/n)] over P for every checkpoint in the input (fitted or not), with bootstrap intervals."""
    from pipeline.estimate import basic_interval, bootstrap_mean_log

    rng = np.random.default_rng([options.seed, 99])
    used = set(data.restriction.models)
    tables = [data.all_table if data.all_table is not None else data.table]
    points = []
    for table in tables:
        for j, name in enumerate(table.checkpoints):
            sub = table.select([name], [p for p in problems if p in table.task_ids])
            keep = (sub.n[0] > 0) & (sub.passed[0] > 0)
            point = {"checkpoint": name, "compute": float(table.compute[j]),
                     "normalized_compute": float(table.compute[j] / data.target_compute),
                     "n_problems": int(keep.sum()), "used_in_fit": name in used,
                     "is_target": name == data.target_name}
            if keep.any():
                n, c = sub.n[:, keep].astype(float), sub.passed[:, keep].astype(float)
                point["mean_log_pass_rate"] = float(np.mean(np.log(c / n)))
                size, value = min(options.bootstrap, 500), point["mean_log_pass_rate"]
                samples = bootstrap_mean_log(n, c, size, rng, over_problems=False)[:, 0]
                both = bootstrap_mean_log(n, c, size, rng)[:, 0]
                point["interval"] = list(basic_interval(value, samples, options.level))   # measurement noise on P
                point["interval_resampling_problems"] = list(basic_interval(value, both, options.level))
            else:
                point["mean_log_pass_rate"] = None
            points.append(point)
    return points


def forecast_or_error(counts: list[PassCount], target_name: str | None, target_compute: float | None,
                      options: FitOptions) -> dict:
    """Like forecast_from_counts, but a UserError becomes {"error": message, ...} so a report can still be written."""
    try:
        return forecast_from_counts(counts, target_name, target_compute, options)
    except UserError as exc:
        return {"error": str(exc), "method": options.method,
                "target": {"name": target_name, "compute": target_compute}, "options": asdict(options)}


def add_fit_arguments(parser: argparse.ArgumentParser, methods: bool = False) -> None:
    """Options shared by fit and backtest (backtest takes a comma-separated list of methods, or all)."""
    if methods:
        parser.add_argument("--method", default="all", help="comma-separated methods to score (default: all)")
    else:
        parser.add_argument("--method", default="default", help="default, aggregate (the report's) or per-problem")
    parser.add_argument("--level", type=float, default=0.9, help="interval level (default 0.9)")
    parser.add_argument("--buckets", type=int, default=6, help="difficulty buckets (default 6)")
    parser.add_argument("--hardest-excluded", type=int, default=None,
                        help="H hardest problems left out of the buckets (default 15/164 of the problems)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates / posterior draws")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-fit-compute-fraction", type=float, default=None,
                        help="fit only checkpoints with compute <= FRACTION x target compute")


def options_from_args(args) -> FitOptions:
    return FitOptions(level=args.level, max_fit_compute_fraction=getattr(args, "max_fit_compute_fraction", None),
                      method=args.method if "," not in args.method and args.method != "all" else "default", buckets=args.buckets, hardest_excluded=args.hardest_excluded,
                      bootstrap=args.bootstrap, seed=args.seed)


def counts_source(args) -> tuple[Path, Path | None]:
    """(pass-counts CSV, run directory or None) from --pass-counts / RUN_DIR / --run."""
    positional = getattr(args, "run_dir", None)
    if positional and args.run and Path(args.run) != Path(positional):
        raise UserError(f"two run directories given: {positional} and --run {args.run}")
    if args.run or positional:
        run = Path(args.run or positional)
        if not run.is_dir():
            raise UserError(f"{run}: run directory not found")
        return run / "pass_counts.csv", run
    if not args.pass_counts:
        raise UserError("give a run directory (RUN_DIR or --run DIR) or --pass-counts FILE.csv")
    return Path(args.pass_counts), None


def register(subparsers) -> None:
    parser = subparsers.add_parser("fit", help="fit the capability law and forecast the target",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="run directory, as for the other commands "
                        "(same as --run)")
    parser.add_argument("--pass-counts", help="CSV with checkpoint,compute,task_id,n,passed (raw FLOPs)")
    parser.add_argument("--run", help="run directory (reads pass_counts.csv, writes forecast.json)")
    parser.add_argument("--out", help="forecast JSON to write (default: RUN/forecast.json)")
    parser.add_argument("--target", help="target checkpoint name (default: the largest compute in the CSV)")
    parser.add_argument("--target-compute", type=float, help="target training FLOPs (raw)")
    add_fit_arguments(parser)
    parser.set_defaults(func=handle_fit)


def handle_fit(args) -> int:
    from pipeline.records import atomic_write_json, read_pass_counts

    csv_path, run = counts_source(args)
    out = Path(args.out) if args.out else (run / "forecast.json" if run else None)
    if out is None:
        raise UserError("give --out FILE.json (or a run directory, to write RUN_DIR/forecast.json)")
    result = forecast_from_counts(read_pass_counts(csv_path), args.target, args.target_compute,
                                  options_from_args(args))
    atomic_write_json(out, result)
    p = result["prediction"]
    line = (f"{result['method']}: E_P[log pass rate] at {result['target']['name'] or 'target'} = {p['value']:.4f} "
            f"[{p['interval'][0]:.4f}, {p['interval'][1]:.4f}] ({p['level']:.0%}); alpha={result['alpha']:.4g} "
            f"k={result['k']:.3g}; {len(result['problems'])} problems")
    if "actual" in result and result["actual"]["value"] is not None:
        line += f"; actual {result['actual']['value']:.4f}"
    print(line + f"\nwrote {out}")
    return 0
