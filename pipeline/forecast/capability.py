"""Capability forecast: -E_P[log pass_rate(C)] = alpha * C^(-k), per bucket and overall.

``forecast_from_counts`` turns pass counts into the forecast JSON (docs/forecasting.md has every field);
``capforecast fit`` runs it on a run directory or a bare pass-counts CSV.
"""
from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

import numpy as np

from pipeline.arguments import fraction, level, positive_int
from pipeline.errors import UserError
from pipeline.forecast.fit import FitOptions, actual_value, checkpoint_points, prediction_block, prepare, run_method
from pipeline.records import PassCount


def forecast_from_counts(counts: list[PassCount], target_name: str | None, target_compute: float | None,
                         options: FitOptions) -> dict:
    """The forecast JSON for the target; raises UserError (clear message) when no fit is possible."""
    from pipeline.forecast.buckets import bucket_forecasts
    from pipeline.forecast.methods import METHODS, resolve_method
    from pipeline.forecast.problem_laws import falling_problems

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
    out["negative_exponent"] = negative_exponent_share(fit, problems)
    out["warnings"] = list(data.warnings or []) + forecast_warnings(fit, model_table, x_all)
    out["buckets"], out["hardest_excluded"] = bucket_forecasts(data, method, options, fit)
    if options.alternatives:
        out["alternatives"] = {}
        for other in METHODS:
            if other == method or (method == "stacked" and other in ("per-problem", "sigmoid")):
                continue   # the stacked fit's own laws: their weights are in law.weights
            try:
                alt = run_method(other, data.table, models, problems, data.target_compute, options)
                out["alternatives"][other] = {"alpha": alt.alpha, "k": alt.k, "prediction": {
                    "value": alt.prediction, "interval": list(alt.interval), "level": options.level}}
            except UserError as exc:
                out["alternatives"][other] = {"error": str(exc)}
    out["options"] = asdict(options)
    return out


def negative_exponent_share(fit, problems: list[str]) -> dict:
    """Problems whose fitted exponent is negative (pass rate falling with scale) and their share of the forecast."""
    k, log_p = fit.details.get("problem_k"), fit.details.get("problem_log_pass_rate_at_target")
    if k is None or log_p is None:
        return {"problems": [], "share_of_forecast": None, "note": f"the {fit.method} method has no per-problem laws"}
    k, lam = np.asarray(k), -np.asarray(log_p)
    falling = k < 0
    return {"problems": [t for t, f in zip(problems, falling) if f],
            "share_of_forecast": float(lam[falling].sum() / max(lam.sum(), 1e-300))}


def forecast_warnings(fit, table, x) -> list[str]:
    """When the data cannot support a confident forecast, say so."""
    out = []
    rolling = fit.details.get("rolling")
    if rolling is not None and rolling.get("folds", 0) == 0:
        out.append(f"only {len(x)} fit checkpoints: no rolling backtest inside the fit is possible, so the allowance "
                   f"for a wrong law is the prior miss rate ({fit.details['miss_rate_per_efold']:.3g} per e-fold of "
                   "compute), not measured on this family; the interval is a weak guide")
    solved = np.all(table.passed >= 1, axis=0) & np.all(table.n > 0, axis=0)
    if solved.any():
        mean_log = np.mean(np.log(table.passed[:, solved] / table.n[:, solved]), axis=1)
        slope = np.polyfit(x, mean_log, 1)[0] if len(x) >= 2 else 0.0
        if slope <= 0:
            out.append("the measured mean log pass rate does not improve with scale across the fit checkpoints ("
                       + ", ".join(f"{name} {v:.3f}" for name, v in zip(table.checkpoints, mean_log))
                       + "): the forecast rests on the per-problem laws and their prior; treat it as weak")
    return out


def forecast_or_error(counts: list[PassCount], target_name: str | None, target_compute: float | None,
                      options: FitOptions) -> dict:
    """Like forecast_from_counts, but a UserError becomes {"error": message, ...} so a report can still be written."""
    try:
        return forecast_from_counts(counts, target_name, target_compute, options)
    except UserError as exc:
        return {"error": str(exc), "method": options.method,
                "target": {"name": target_name, "compute": target_compute}, "options": asdict(options)}


def add_fit_arguments(parser: argparse.ArgumentParser, methods: bool = False) -> None:
    """Options shared by fit and backtest (backtest takes a comma-separated list of methods, or all).

    Every default is None: on a run directory the value stored in its manifest.json (the family's ``fit:``
    section) applies, elsewhere the FitOptions default; an option given here overrides either.
    """
    stored = " (default: the run directory's setting, else %s)"
    if methods:
        parser.add_argument("--method", default=None, help="comma-separated methods to score, or all "
                            "(default: aggregate and the default method)")
    else:
        parser.add_argument("--method", default=None, help="default (stacked), aggregate (the report's), "
                            "per-problem (power laws) or sigmoid" + stored % "default")
    parser.add_argument("--level", type=level, default=None, help="interval level" + stored % "0.9")
    parser.add_argument("--buckets", type=positive_int, default=None, help="difficulty buckets" + stored % "6")
    parser.add_argument("--hardest-excluded", type=int, default=None,
                        help="H hardest problems left out of the buckets (default 15/164 of the problems)")
    parser.add_argument("--bootstrap", type=positive_int, default=None,
                        help="bootstrap replicates / posterior draws" + stored % "1000")
    parser.add_argument("--seed", type=int, default=None, help="random seed of the bootstrap (default 0)")
    parser.add_argument("--max-fit-compute-fraction", type=fraction, default=None,
                        help="fit only checkpoints with compute <= FRACTION x target compute, 0 < FRACTION <= 1"
                             + stored % "no limit")


FIT_ARGUMENTS = ("level", "max_fit_compute_fraction", "method", "buckets", "hardest_excluded", "bootstrap", "seed")


def run_fit_settings(run: Path | None) -> tuple[dict, dict]:
    """(fit settings, target) stored in a run directory's manifest.json; ({}, {}) without a run directory."""
    if run is None or not (Path(run) / "manifest.json").exists():   # a bare directory holding pass_counts.csv
        return {}, {}
    from pipeline.manifest import read_manifest

    manifest = read_manifest(run)
    family = manifest.get("family_config") or {}
    stored = {k: v for k, v in (family.get("fit") or {}).items() if k in FIT_ARGUMENTS}
    sampling = family.get("sampling") or {}
    if isinstance(sampling.get("n"), int) and not sampling.get("adaptive"):
        stored["target_n"] = sampling["n"]
    return stored, manifest.get("target") or {}


def options_from_args(args, stored: dict | None = None) -> tuple[FitOptions, dict]:
    """FitOptions from the command line over the run's stored settings over the defaults, and where each came from."""
    stored = stored or {}
    values, source = {}, {}
    for name in FIT_ARGUMENTS + ("target_n",):
        given = getattr(args, name, None)
        if name == "method" and given is not None and ("," in given or given == "all"):
            given = None   # backtest's list of methods; its fits use the default
        if given is not None:
            values[name], source[name] = given, "command line"
        elif name in stored and stored[name] is not None:
            values[name], source[name] = stored[name], "run directory (manifest.json)"
        else:
            source[name] = "default"
    return FitOptions(**values), source


def describe_sources(options: FitOptions, source: dict) -> str:
    """'settings from the run directory: ...; from the command line: ...' for the terminal."""
    parts = []
    for label, key in (("from the run directory", "run directory (manifest.json)"),
                       ("from the command line", "command line")):
        names = [n for n, s in source.items() if s == key]
        if names:
            parts.append(f"{label}: " + ", ".join(f"{n}={getattr(options, n)}" for n in names))
    return "settings " + "; ".join(parts) if parts else "settings: defaults"


def writable_parent(out: Path, option: str) -> None:
    """Refuse before fitting when the output's folder exists but cannot be written."""
    from pipeline.records import check_writable

    parent = Path(out).parent
    if parent.is_dir():
        check_writable(parent, option)


def add_counts_source_arguments(parser: argparse.ArgumentParser, writes: str) -> None:
    """RUN_DIR / --run / --pass-counts, read back by ``counts_source`` (fit and backtest)."""
    parser.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="run directory, as for the other commands "
                        "(same as --run)")
    parser.add_argument("--pass-counts", help="CSV with checkpoint,compute,task_id,n,passed (raw FLOPs)")
    parser.add_argument("--run", help=f"run directory (reads pass_counts.csv, writes {writes})")


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
    add_counts_source_arguments(parser, "forecast.json")
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
    writable_parent(out, "--out" if args.out else "RUN_DIR")
    stored, target = run_fit_settings(run)
    options, source = options_from_args(args, stored)
    target_name = args.target or (target.get("name") if args.target_compute is None else None)
    target_compute = args.target_compute or (target.get("compute") if args.target is None else None)
    result = forecast_from_counts(read_pass_counts(csv_path), target_name, target_compute, options)
    result["settings_source"] = source
    atomic_write_json(out, result)
    print(summary_text(result))
    print(describe_sources(options, source))
    print(f"wrote {out}")
    return 0


def summary_text(result: dict) -> str:
    """What `fit` prints: checkpoints used, the forecast and measurement each with its own interval, warnings."""
    p = result["prediction"]
    lines = [f"fit on {len(result['models'])} checkpoints: {', '.join(result['models'])}"]
    line = (f"{result['method']}: E_P[log pass rate] at {result['target']['name'] or 'target'} = {p['value']:.4f} "
            f"(forecast interval [{p['interval'][0]:.4f}, {p['interval'][1]:.4f}], {p['level']:.0%}); "
            f"alpha={result['alpha']:.4g} k={result['k']:.3g}; {len(result['problems'])} problems")
    lines.append(line)
    if "measurement_interval" in p:
        lo, hi = p["measurement_interval"]
        lines.append(f"what {p['measurement_n']} samples per problem will measure: {p['measurement_value']:.4f} "
                     f"(measurement interval [{lo:.4f}, {hi:.4f}])")
    actual = result.get("actual")
    if actual and actual["value"] is not None:
        same = actual.get("prediction_on_same_problems")
        judged = same or p
        band = judged.get("measurement_interval") or judged["interval"]
        kind = "measurement" if judged.get("measurement_interval") else "forecast"
        where = f" on the {actual['n_problems']} problems it solved" if same else ""
        inside = "inside" if band[0] <= actual["value"] <= band[1] else "OUTSIDE"
        lines.append(f"actual {actual['value']:.4f}{where}: {inside} the {kind} interval [{band[0]:.4f}, {band[1]:.4f}]"
                     + (f" (forecast there {same['value']:.4f} [{same['interval'][0]:.4f}, {same['interval'][1]:.4f}])"
                        if same else ""))
    neg = result.get("negative_exponent") or {}
    if neg.get("problems"):
        lines.append(f"{len(neg['problems'])} problems have a negative exponent (pass rate falling with scale); "
                     f"{neg['share_of_forecast']:.1%} of the forecast -log pass rate")
    lines += [f"warning: {w}" for w in result.get("warnings") or []]
    return "\n".join(lines)

