"""Capability-law fitting methods over a restricted [checkpoint, problem] count grid.

- ``aggregate``: the GPT-4 report's fit, least squares of log(-E_P[log(c/n)]) on log C (one power law),
  intervals by bootstrap over problems and samples.
- ``per-problem``: every problem's own law fitted to its binomial counts with exponents pooled across
  problems (pipeline.forecast.problem_laws), then the extrapolations averaged; intervals from each problem's
  posterior (a parametric bootstrap over samples). A sum of power laws is not a power law; this method
  does not pretend it is.

Both return a ``MethodFit`` on the normalised axis (target C = 1); x = log C <= 0 at the checkpoints.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.config import MIN_FIT_CHECKPOINTS
from pipeline.errors import UserError
from pipeline.registry import Registry
from pipeline.forecast.departure import aggregate_line
from pipeline.forecast.estimate import bootstrap_mean_log, percentile_interval
from pipeline.forecast.laws import LAWS, stacked_forecast, subset_summary

MIN_POINTS = MIN_FIT_CHECKPOINTS


@dataclass
class MethodFit:
    """One method's law: alpha, k (with intervals), the forecast at C = 1 and a curve with its band."""

    method: str
    alpha: float
    alpha_interval: tuple[float, float]
    k: float
    k_interval: tuple[float, float]
    prediction: float                      # E_P[log pass rate] at the target (negative)
    interval: tuple[float, float]
    curve_x: np.ndarray                    # log normalised compute grid
    curve: np.ndarray                      # predicted E_P[log pass rate] on the grid
    curve_lo: np.ndarray
    curve_hi: np.ndarray
    details: dict = field(default_factory=dict)
    target_p_draws: np.ndarray | None = None  # [draw, problem] pass rates at the target, when the method has them
    log_p_draws: np.ndarray | None = None     # [draw, problem, grid] per-problem log pass rates (before widening)
    scale_draws: np.ndarray | None = None     # [draw, grid] widening of -log p shared by all problems


def measurement_interval(p_draws: np.ndarray, n: np.ndarray, level: float,
                         rng: np.random.Generator) -> tuple[float, float] | None:
    """Interval for the E_P[log(c/n)] that ``n`` samples per problem will *measure* at the target.

    The forecast interval is for the true mean log pass rate; the actual value is an estimate from n samples,
    so a fair check adds that binomial noise: each draw's pass rates are sampled n times per problem and
    averaged over the problems solved at least once, exactly as the actual value is computed.
    """
    summary = measurement_summary(p_draws, n, level, rng)
    return None if summary is None else summary[1]


def measurement_summary(p_draws: np.ndarray, n: np.ndarray, level: float,
                        rng: np.random.Generator) -> tuple[float, tuple[float, float]] | None:
    """(median, interval) of what ``n`` samples per problem will measure; see measurement_interval."""
    c = rng.binomial(np.broadcast_to(n.astype(np.int64), p_draws.shape), np.clip(p_draws, 0.0, 1.0))
    logs = np.where(c > 0, np.log(np.maximum(c, 1) / n[None, :]), np.nan)
    solved = np.any(c > 0, axis=1)
    if not solved.any():
        return None
    values = np.nanmean(logs[solved], axis=1)
    return float(np.median(values)), _interval(values, level)


def curve_grid(x: np.ndarray, points: int = 25) -> np.ndarray:
    """Log-compute grid from the smallest checkpoint to the target (x = 0)."""
    return np.linspace(min(float(np.min(x)), 0.0), 0.0, points)


def _check(x: np.ndarray, n: np.ndarray, passed: np.ndarray) -> None:
    if len(x) < MIN_POINTS:
        raise UserError(f"need at least {MIN_POINTS} checkpoints below the target to fit alpha and k; got {len(x)}")
    if len(np.unique(x)) < 2:
        raise UserError("all fit checkpoints have the same compute; the exponent k cannot be fitted")
    if n.shape[1] == 0:
        raise UserError("no problem qualifies for the fit (none is solved at least once by every checkpoint)")


def fit_aggregate(x: np.ndarray, n: np.ndarray, passed: np.ndarray, level: float, bootstrap: int,
                  rng: np.random.Generator) -> MethodFit:
    """The report's method: one power law fitted by least squares in log space to E_P[log(c/n)]."""
    _check(x, n, passed)
    if np.any(passed < 1):
        raise UserError("the aggregate fit needs every problem solved by every checkpoint (log 0 otherwise)")
    mean_log = np.mean(np.log(passed / n), axis=1)
    if np.any(mean_log >= 0):
        bad = int(np.flatnonzero(mean_log >= 0)[0])
        raise UserError(f"checkpoint {bad + 1} of the fit solves every problem in every sample: -log pass rate "
                        "is 0 there and log(0) has no value; add harder problems or more samples")
    slope, intercept = aggregate_line(x, n, passed)
    reps = bootstrap_mean_log(n, passed, bootstrap, rng)           # [reps, ckpt]
    y_rep = np.log(np.maximum(-reps, 1e-12)).T                      # [ckpt, reps]
    slopes, intercepts = np.polyfit(x, y_rep, 1)
    grid = curve_grid(x)
    curve = -np.exp(intercept + slope * grid)
    curve_rep = -np.exp(intercepts[None, :] + slopes[None, :] * grid[:, None])
    lo, hi = percentile_interval(curve_rep, level, axis=1)
    alpha_rep, k_rep = np.exp(intercepts), -slopes
    return MethodFit(
        "aggregate", float(np.exp(intercept)), _interval(alpha_rep, level), float(-slope), _interval(k_rep, level),
        float(-np.exp(intercept)), _interval(-alpha_rep, level), grid, curve, lo, hi,
        {"residual_sd": float(np.std(np.log(-mean_log) - (intercept + slope * x), ddof=min(2, len(x) - 1)))},
    )


def fit_per_problem(x: np.ndarray, n: np.ndarray, passed: np.ndarray, level: float, bootstrap: int,
                    rng: np.random.Generator) -> MethodFit:
    """Per-problem power laws with pooled exponents, drawn from each problem's exact posterior."""
    return _fit_laws("per-problem", ("power",), False, x, n, passed, level, bootstrap, rng)


def fit_sigmoid(x: np.ndarray, n: np.ndarray, passed: np.ndarray, level: float, bootstrap: int,
                rng: np.random.Generator) -> MethodFit:
    """Per-problem sigmoids in log C (logit link), pooled slopes, exact posterior draws."""
    return _fit_laws("sigmoid", ("sigmoid",), False, x, n, passed, level, bootstrap, rng)


def fit_stacked(x: np.ndarray, n: np.ndarray, passed: np.ndarray, level: float, bootstrap: int,
                rng: np.random.Generator) -> MethodFit:
    """Power law and sigmoid weighted by leave-future-out densities, shocks taken out, widened (laws._widening).

    The name stays "stacked" (the laws are stacked into one mixture); the weights are pseudo-BMA, see
    docs/forecasting.md."""
    return _fit_laws("stacked", tuple(LAWS), True, x, n, passed, level, bootstrap, rng)


def _fit_laws(name, laws, calibrate, x, n, passed, level, bootstrap, rng) -> MethodFit:
    _check(x, n, passed)
    grid = curve_grid(x)
    draws = max(bootstrap, 200)
    stacked = stacked_forecast(x, n, passed, grid, draws, rng, laws=laws, calibrate=calibrate)
    everything = np.arange(stacked.log_p.shape[1])
    whole = subset_summary(stacked.log_p, stacked.scale, everything, level)
    lam0 = -stacked.log_p[:, :, -1] * stacked.scale[:, -1:]               # [draw, problem] -log p at the target
    alpha_draws = lam0.mean(axis=1)
    k_draws = _local_exponent(-(stacked.log_p.mean(axis=1) * stacked.scale), grid)
    k_eff = float(_local_exponent(-whole["curve"][None, :], grid)[0])
    problem_log_p = stacked.log_p[:, :, -1].mean(axis=0)
    return MethodFit(
        name, -whole["value"], _interval(alpha_draws, level), k_eff, _interval(k_draws, level),
        whole["value"], whole["interval"], grid, whole["curve"], whole["curve_lo"], whole["curve_hi"],
        stacked.details | {"problem_k": stacked.k.tolist(), "problem_log_pass_rate_at_target": problem_log_p.tolist()},
        target_p_draws=np.exp(-lam0), log_p_draws=stacked.log_p, scale_draws=stacked.scale,
    )


def _local_exponent(neg_curve: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """-d log(-E_P[log p]) / d log C at the target, per row of [row, grid]."""
    y = np.log(np.maximum(neg_curve, 1e-300))
    return -(y[:, -1] - y[:, -2]) / (grid[-1] - grid[-2])


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    lo, hi = percentile_interval(np.asarray(values), level)
    return float(lo), float(hi)


DEFAULT_METHOD = "stacked"   # chosen by the simulation study and backtests (docs/forecasting.md)
METHODS = Registry("fit method", {"aggregate": fit_aggregate, "per-problem": fit_per_problem, "sigmoid": fit_sigmoid,
                                  "stacked": fit_stacked}, aliases={"default": DEFAULT_METHOD})


def resolve_method(name: str) -> str:
    """Map 'default' to the default method and reject unknown names with the list of known ones."""
    return METHODS.resolve(name)
