"""Backtest: hold out the largest m checkpoints in turn, forecast each from the rest, and score.

This is how a user learns whether to trust a forecast on their family: for every held-out checkpoint
and every method, the forecast error against its measured E_P[log(c/n)] and whether the interval covered
it. ``capforecast backtest`` (pipeline.forecast.commands) runs it on a run directory or a bare pass-counts CSV.
"""
from __future__ import annotations

from dataclasses import asdict, replace

import numpy as np

from pipeline.config import MIN_FIT_CHECKPOINTS
from pipeline.errors import UserError
from pipeline.passk import fixed
from pipeline.records import PassCount


def backtest(counts: list[PassCount], options, methods: list[str] | None = None,
             max_holdout: int | None = None) -> dict:
    """Rows (holdout m, target, method) with prediction, actual, error, coverage; plus a per-method summary."""
    from pipeline.forecast.estimate import count_table
    from pipeline.forecast.fit import actual_value, prepare, run_method
    from pipeline.forecast.methods import DEFAULT_METHOD, METHODS, resolve_method

    options.check()
    methods = list(METHODS) if methods == ["all"] else methods
    methods = [resolve_method(m) for m in (methods or ["aggregate", DEFAULT_METHOD])]
    table = count_table(counts)
    names = table.checkpoints
    most = len(names) - MIN_FIT_CHECKPOINTS
    if most < 1:
        raise UserError(f"a backtest needs at least {MIN_FIT_CHECKPOINTS + 1} checkpoints ({MIN_FIT_CHECKPOINTS} to "
                        f"fit, 1 to hold out); got {len(names)}")
    if max_holdout is not None:
        if max_holdout < 1:
            raise UserError(f"--max-holdout must be >= 1, got {max_holdout}")
        most = min(most, max_holdout)
    options = replace(options, max_fit_compute_fraction=None, alternatives=False)
    rows = []
    for m in range(1, most + 1):
        fit_names, held = names[:-m], names[-m:]
        for target in held:
            subset = [c for c in counts if c.checkpoint in fit_names or c.checkpoint == target]
            for method in methods:
                rows.append(_score(subset, target, method, m, options, prepare, run_method, actual_value))
    return {"rows": rows, "summary": summarize(rows), "options": asdict(options), "methods": methods}


def _score(subset, target, method, m, options, prepare, run_method, actual_value) -> dict:
    row = {"holdout": m, "target": target, "method": method}
    try:
        data = prepare(subset, target, None, options)
        problems = data.restriction.problems
        fit = run_method(method, data.table, data.restriction.models, problems, data.target_compute, options)
        actual = actual_value(data, problems, method, fit, options)
    except UserError as exc:
        return row | {"error": str(exc)}
    from pipeline.forecast.fit import judged_interval, judged_kind, prediction_block

    pred = actual.get("prediction_on_same_problems") or prediction_block(fit, data, problems, options)
    largest = float(np.max(data.table.select(data.restriction.models).compute))
    row |= {"target_compute": data.target_compute, "extrapolation": data.target_compute / largest,
            "n_problems": actual["n_problems"], "unsolved_by_target": len(actual["unsolved_by_target"]),
            "prediction": pred["value"], "interval": list(pred["interval"]), "actual": actual["value"],
            "measurement_value": pred.get("measurement_value"), "measurement_interval": pred.get("measurement_interval"),
            "judged_by": judged_interval(pred), "covered_by": judged_kind(pred) + " interval"}
    if actual["value"] is None:
        return row | {"error": actual["note"]}
    solved = data.target_table.select(task_ids=[p for p in problems if p not in actual["unsolved_by_target"]])
    p_hat = solved.passed[0] / solved.n[0]
    row["actual_se"] = float(np.sqrt(np.sum((1 - p_hat) / (solved.n[0] * p_hat))) / len(p_hat))
    row["error"] = None
    row["signed_error"] = pred["value"] - actual["value"]
    row["abs_error"] = abs(row["signed_error"])
    # relative error is undefined when the actual is 0 (every problem solved in every sample): absolute only
    row["relative_error"] = row["abs_error"] / abs(actual["value"]) if abs(actual["value"]) > 1e-9 else None
    lo, hi = row["judged_by"]
    row["covered"] = bool(lo <= actual["value"] <= hi)
    return row


def summarize(rows: list[dict]) -> dict:
    """Per method: forecasts scored, median absolute and relative error, mean signed error, coverage."""
    out = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        scored = [r for r in rows if r["method"] == method and r.get("error") is None]
        failed = sum(1 for r in rows if r["method"] == method and r.get("error") is not None)
        if not scored:
            out[method] = {"scored": 0, "failed": failed}
            continue
        out[method] = {
            "scored": len(scored), "failed": failed,
            "median_abs_error": float(np.median([abs(r["signed_error"]) for r in scored])),
            "median_relative_error": (float(np.median(rel)) if (rel := [r["relative_error"] for r in scored
                                                                        if r["relative_error"] is not None]) else None),
            "mean_signed_error": float(np.mean([r["signed_error"] for r in scored])),
            "coverage": float(np.mean([r["covered"] for r in scored])),
        }
    return out


def format_table(result: dict) -> str:
    """A plain-text table of the rows and the summary."""
    lines = [f"{'m':>2} {'target':<16} {'x':>7} {'method':<12} {'forecast':>9} {'forecast interval':>21} "
             f"{'measured':>9} {'measurement interval':>21} {'actual':>9} {'error':>9} covered (error = forecast - actual; by the measurement "
             "interval when shown)"]
    for r in result["rows"]:
        if r.get("error") is not None:
            lines.append(f"{r['holdout']:>2} {r['target']:<16} {'':>7} {r['method']:<12} error: {r['error']}")
            continue
        lo, hi = r["interval"]
        mv, band = r.get("measurement_value"), r.get("measurement_interval")
        measured = (f"{fixed(mv):>9} [{fixed(band[0]):>9},{fixed(band[1]):>9}]" if band and mv is not None
                    else f"{'—':>9} {'':>21}")
        lines.append(f"{r['holdout']:>2} {r['target']:<16} {r['extrapolation']:>6.1f}x {r['method']:<12} "
                     f"{fixed(r['prediction']):>9} [{fixed(lo):>9},{fixed(hi):>9}] {measured} "
                     f"{fixed(r['actual']):>9} {r['signed_error']:>+9.4f} {'yes' if r['covered'] else 'NO'}")
    for method, s in result["summary"].items():
        if s["scored"]:
            lines.append(f"{method}: {s['scored']} forecasts, median |error| {s['median_abs_error']:.2g} in mean log "
                         f"pass rate, coverage {s['coverage']:.0%} (level {result['options']['level']:.0%}), "
                         f"{s['failed']} failed")
        else:
            lines.append(f"{method}: no forecast could be scored ({s['failed']} failed)")
    return "\n".join(lines)
