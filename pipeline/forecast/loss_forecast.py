"""The loss law's forecast for one target from measured points: which points enter the fit, the law with
bootstrap intervals, a *prediction* interval for the target's loss and the warnings a reader needs.

The prediction interval has three parts, combined per side in quadrature on log L: the curve's own
uncertainty (a residual bootstrap, plus corpus documents when per-document losses exist), the target's
own scatter about the law (one more residual draw), and the misfit of the law itself, calibrated by
rolling-origin backtests inside the fit data (error per decade of extrapolation, a conformal quantile,
times the target's distance in decades). docs/forecasting-ops.md, "Loss law", has the reasoning.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.config import MIN_FIT_CHECKPOINTS, fit_exclusion
from pipeline.errors import UserError
from pipeline.forecast.loss_law import (HUBER_DELTA, bootstrap_loss_law, fit_loss_law, frontier_mask,
                                        identifiability, rolling_backtests)

OFF_CURVE_RMS = 0.01      # RMS log-residual above which the points do not lie on one L(C) curve
OFF_CURVE_EXCESS = 0.02   # a run this much (log) worse than a run with less compute is off the frontier


@dataclass
class LossFitSettings:
    """How to fit and forecast the loss law."""

    bootstrap: int = 200
    level: float = 0.9
    seed: int = 0
    max_fit_compute_fraction: float | None = None
    frontier: bool = False   # fit only runs whose loss is below every run with less compute


def select_fit(names: list[str], compute: np.ndarray, loss: np.ndarray, target: str | None,
               target_compute: float, settings: LossFitSettings) -> np.ndarray:
    """Mask of the points that enter the fit: below the target, within the compute limit, on the frontier."""
    used = np.array([fit_exclusion(n, x, target, target_compute, settings.max_fit_compute_fraction) is None
                     for n, x in zip(names, compute)], dtype=bool)
    if settings.frontier and used.any():
        on = np.zeros(len(names), dtype=bool)
        on[used] = frontier_mask(compute[used], loss[used])
        used = on
    if used.sum() < MIN_FIT_CHECKPOINTS:
        chosen = ", ".join(n for n, u in zip(names, used) if u) or "none"
        raise UserError(f"the loss law needs at least {MIN_FIT_CHECKPOINTS} checkpoints below the target (and within "
                        f"the compute limit{', on the frontier' if settings.frontier else ''}); usable: {chosen}")
    return used


def off_curve(compute: np.ndarray, loss: np.ndarray, residuals: np.ndarray) -> str | None:
    """A warning when the fitted points do not lie on one L(C) curve, else None."""
    rms = float(np.sqrt(np.mean(residuals ** 2)))
    order = np.argsort(compute)
    c, logy = compute[order], np.log(loss[order])
    excess = np.array([logy[i] - logy[c < c[i]].min() if (c < c[i]).any() else 0.0 for i in range(len(c))])
    above = int(np.sum(excess > OFF_CURVE_EXCESS))
    if rms <= OFF_CURVE_RMS and above == 0:
        return None
    text = (f"the points do not lie on one L(C) curve: they scatter about the fitted law by an RMS log-residual "
            f"of {rms:.3g} (a compute-optimal family scatters well under {OFF_CURVE_RMS:g})")
    if above:
        return text + (f", and {above} of {len(c)} runs have a loss more than {OFF_CURVE_EXCESS:.0%} above a run "
                       f"with less compute (up to {100 * excess.max():.1f}%), as runs far from compute-optimal do. "
                       f"The law then fits a band, not a curve: fit the compute-optimal frontier instead "
                       f"(--frontier keeps runs whose loss is below every run with less compute)")
    return text + ("; the checkpoints may differ in recipe, or the law bends over this range: the forecast "
                   "rests on its interval more than on its value")


def misfit_allowance(errors, level: float, decades: float) -> dict:
    """Conformal quantile of |log error| per decade over the rolling-origin backtests, times the target's distance."""
    scores = np.sort([abs(e.log_error) / e.decades for e in errors])
    rank = math.ceil((len(scores) + 1) * level)
    rate = float(scores[min(rank, len(scores)) - 1])
    return {"backtests": len(errors), "origins": len({e.cut for e in errors}),
            "longest_backtest_decades": float(max(e.decades for e in errors)),
            "per_decade": rate, "target_decades": decades, "log_half_width": rate * decades,
            "quantile_exceeds_sample": rank > len(scores)}


def forecast_loss(compute: np.ndarray, loss: np.ndarray, target_compute: float, settings: LossFitSettings,
                  documents: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """Law, intervals, prediction and warnings for points (compute in FLOPs, loss) that all enter the fit."""
    x = compute / target_compute
    fit = fit_loss_law(x, loss)
    init, level, tail = (fit.a, fit.b, fit.c), settings.level, 50 * (1 - settings.level)
    reps = None
    if settings.bootstrap > 0 and (len(x) > 3 or documents is not None):
        reps = bootstrap_loss_law(x, fit, settings.bootstrap, np.random.default_rng(settings.seed), 0,
                                  documents=documents)
    value = fit.a + fit.c
    lo = hi = 0.0
    if reps is not None:
        q_lo, q_hi = np.percentile(np.log(reps[:, 4]), [tail, 100 - tail])
        lo, hi = max(0.0, math.log(value) - q_lo), max(0.0, q_hi - math.log(value))
    warnings, notes = [], identifiability(fit, reps, len(x), level)
    errors = rolling_backtests(x, loss, init=init) if len(x) >= 5 else []
    calibration = None
    decades = float(np.log10(1.0 / x.max()))
    if errors:
        calibration = misfit_allowance(errors, level, decades)
        lo, hi = (math.hypot(side, calibration["log_half_width"]) for side in (lo, hi))
        if decades > 2 * calibration["longest_backtest_decades"]:
            notes.append(f"the misfit allowance is extrapolated: backtests inside the fit reach "
                         f"{calibration['longest_backtest_decades']:.2g} decades, the target is {decades:.2g} "
                         f"decades beyond the largest fitted point")
    else:
        notes.append(f"no rolling-origin backtest (needs 5 or more fitted points spanning a quarter decade; "
                     f"{len(x)} here): the interval assumes the law is exact beyond the fit")
    interval = [value * math.exp(-lo), value * math.exp(hi)]
    if hi + lo < 1e-9:
        interval = None
        warnings.append(f"no interval: {len(x)} points and nothing resampled (3 points leave no residuals; per-"
                        f"document losses or --bootstrap > 0 are needed) would give a zero-width interval, which "
                        f"says nothing about the forecast's accuracy")
    elif hi + lo < 1e-4:
        warnings.append(f"the interval is degenerate (relative width {hi + lo:.1g}): the points lie on the law "
                        f"almost exactly, which is not evidence that the target will")
    bad = off_curve(compute, loss, fit.residuals)
    if bad:
        warnings.append(bad)

    def band(col: int):
        return None if reps is None else [float(v) for v in np.percentile(reps[:, col], [tail, 100 - tail])]
    return {
        "curve": law_band(fit, reps, x.min(), level),
        "law": "L(C) = a * (C / C_target)**b + c",
        "a": fit.a, "a_interval": band(0), "b": fit.b, "b_interval": band(1), "c": fit.c, "c_interval": band(2),
        "prediction": {"value": value, "interval": interval, "level": level, "interval_kind": "prediction",
                       "curve_interval": band(3)},
        "fit": {"huber_delta": HUBER_DELTA, "log_residuals": fit.residuals.tolist(),
                "rms_log_residual": float(np.sqrt(np.mean(fit.residuals ** 2))), "bootstrap": settings.bootstrap,
                "resampled": ("corpus documents and " if documents is not None else "")
                + ("checkpoint residuals" if len(x) > 3 else "nothing else (3 points)"),
                "calibration": calibration, "identifiability": notes, "warnings": warnings},
    }


CURVE_POINTS = 30


def law_band(fit, reps: np.ndarray | None, x_lo: float, level: float) -> list[dict] | None:
    """The law and its ``level`` band, from the bootstrap's (a, b, c), at CURVE_POINTS normalised computes from
    x_lo to the target (x = 1), for the report's figure; None without a bootstrap."""
    if reps is None:
        return None
    xs = np.geomspace(x_lo, 1.0, CURVE_POINTS)
    draws = reps[:, 0:1] * xs[None, :] ** reps[:, 1:2] + reps[:, 2:3]
    tail = 50 * (1 - level)
    lo, hi = np.percentile(draws, [tail, 100 - tail], axis=0)
    return [{"normalized_compute": float(x), "value": float(fit.predict(np.array([x]))[0]),
             "interval": [float(a), float(b)]} for x, a, b in zip(xs, lo, hi)]


def loss_forecast_json(rows: list[dict], target: str | None, target_compute: float, settings: LossFitSettings,
                       documents: dict | None = None) -> dict:
    """The loss.json object from rows {checkpoint, compute, mean_loss, ...}; ``documents`` maps a checkpoint to
    its (tokens, loss_sums) per document when those were measured."""
    rows = sorted(rows, key=lambda r: r["compute"])
    names = [r["checkpoint"] for r in rows]
    compute = np.array([float(r["compute"]) for r in rows])
    loss = np.array([float(r["mean_loss"]) for r in rows])
    used = select_fit(names, compute, loss, target, target_compute, settings)
    fit_names = [n for n, u in zip(names, used) if u]
    docs = None
    if documents:
        docs = (np.array([documents[n][0] for n in fit_names], dtype=float),
                np.array([documents[n][1] for n in fit_names], dtype=float))
    out = {"target": {"name": target, "compute": target_compute}}
    out.update(forecast_loss(compute[used], loss[used], target_compute, settings, docs))
    out["points"] = [dict(r, used_in_fit=bool(u)) for r, u in zip(rows, used)]
    out["fit"] = {"checkpoints": fit_names, "frontier_only": settings.frontier, **out["fit"]}
    actual = next((r for r in rows if r["checkpoint"] == target), None)
    if actual is not None:
        out["actual"] = {"value": float(actual["mean_loss"])}
    return out
