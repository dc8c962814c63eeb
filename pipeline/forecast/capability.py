"""Capability forecast: -E_P[log pass_rate(C)] = alpha * C^(-k), per bucket and overall.

``forecast_from_counts`` turns pass counts into the forecast JSON (docs/forecasting.md has every field);
``summary_text`` is what ``capforecast fit`` (pipeline.forecast.commands) prints of it.
"""
from __future__ import annotations

from dataclasses import asdict

import numpy as np

from pipeline.errors import UserError
from pipeline.forecast.fit import FitOptions, actual_value, checkpoint_points, prediction_block, prepare, run_method
from pipeline.records import PassCount


def forecast_from_counts(counts: list[PassCount], target_name: str | None, target_compute: float | None,
                         options: FitOptions) -> dict:
    """The forecast JSON for the target; raises UserError (clear message) when no fit is possible."""
    from pipeline.forecast.buckets import bucket_forecasts
    from pipeline.forecast.methods import METHODS, resolve_method
    from pipeline.forecast.problem_laws import falling_problems

    options.check()
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
    from pipeline.forecast.estimate import mean_log_pass_rate

    out = []
    rolling = fit.details.get("rolling")
    if rolling is not None and rolling.get("folds", 0) == 0:
        out.append(f"only {len(x)} fit checkpoints: no rolling backtest inside the fit is possible, so the allowance "
                   f"for a wrong law is the prior miss rate ({fit.details['miss_rate_per_efold']:.3g} per e-fold of "
                   "compute), not measured on this family; the interval is a weak guide")
    solved = np.all(table.passed >= 1, axis=0) & np.all(table.n > 0, axis=0)
    if solved.any():
        mean_log = mean_log_pass_rate(table.passed[:, solved], table.n[:, solved])
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

