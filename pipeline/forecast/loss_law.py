"""Fit the loss law L(C) = a * C**b + c (Huber on log L, grid of starts, L-BFGS), bootstrap it, backtest it.

Compute is normalised so the target has C = 1: ``a`` is then the reducible loss at the target and
a + c the forecast. With few points c trades off against a (a lower floor is matched by a larger,
flatter power term); ``identifiability`` says so in numbers when it matters. ``loss_forecast`` turns
these pieces into the forecast and its prediction interval.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from pipeline.errors import UserError

HUBER_DELTA = 1e-3  # Hoffmann et al. (2022), on log-loss residuals


@dataclass
class LossFit:
    """One fit of L(x) = a * x**b + c on normalised compute x = C / C_target."""

    a: float
    b: float
    c: float
    objective: float
    residuals: np.ndarray  # log(fit) - log(observed), per point

    def predict(self, x) -> np.ndarray:
        return self.a * np.asarray(x, dtype=float) ** self.b + self.c


def huber(residual: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
    return special.huber(delta, residual)


def _objective(theta: np.ndarray, logx: np.ndarray, logy: np.ndarray, delta: float) -> tuple[float, np.ndarray]:
    """Huber loss of log-residuals and its gradient in (log a, b, c)."""
    log_a, b, c = theta
    power = np.exp(log_a + b * logx)
    total = power + c
    resid = np.log(total) - logy
    slope = np.clip(resid, -delta, delta)           # derivative of the Huber loss
    share = power / total
    grad = np.array([np.sum(slope * share), np.sum(slope * share * logx), np.sum(slope / total)])
    return float(np.sum(huber(resid, delta))), grad


def fit_loss_law(x, loss, starts: int = 3, delta: float = HUBER_DELTA, init: tuple | None = None) -> LossFit:
    """Best of L-BFGS-B runs from a grid of (log a, b, c) starts (plus ``init``); b in [-3, 0], 0 <= c < min L."""
    x, loss = np.asarray(x, dtype=float), np.asarray(loss, dtype=float)
    if x.shape != loss.shape or x.ndim != 1:
        raise UserError("compute and loss must be two equally long lists")
    if len(x) < 3:
        raise UserError(f"the loss law has 3 parameters; need at least 3 checkpoints, got {len(x)}")
    if np.any(x <= 0) or np.any(loss <= 0) or not np.all(np.isfinite(loss)):
        raise UserError("compute and loss must be positive and finite")
    logx, logy = np.log(x), np.log(loss)
    c_hi = float(loss.min()) * (1 - 1e-6)
    best = None
    grid = itertools.product(np.linspace(-1.0, 2.0, starts),          # log a (nats, at the target); 0: init only
                             np.linspace(-0.5, -0.02, starts),       # b
                             np.linspace(0.0, 0.95, starts) * c_hi)  # c
    if init is None and starts < 1:
        raise ValueError("fit_loss_law needs init when starts < 1")
    if init is not None:
        a0, b0, c0 = init
        grid = itertools.chain([(np.log(max(a0, 1e-12)), b0, min(c0, c_hi))], grid)
    bounds = [(-20, 20), (-3.0, 0.0), (0.0, c_hi)]
    for log_a, b, c in grid:  # every start to a loose tolerance, then the best one polished
        res = optimize.minimize(_objective, np.array([log_a, b, c]), args=(logx, logy, delta), jac=True,
                                method="L-BFGS-B", bounds=bounds, options={"ftol": 1e-10, "gtol": 1e-8, "maxiter": 300})
        if best is None or res.fun < best.fun:
            best = res
    best = optimize.minimize(_objective, best.x, args=(logx, logy, delta), jac=True, method="L-BFGS-B",
                             bounds=bounds, options={"ftol": 1e-13, "gtol": 1e-9, "maxiter": 1000})
    log_a, b, c = best.x
    fit = LossFit(float(np.exp(log_a)), float(b), float(c), float(best.fun), np.zeros(0))
    fit.residuals = np.log(fit.predict(x)) - logy
    return fit


def scatter_pool(residuals) -> np.ndarray | None:
    """Log deviations of observed points from the law (log obs - log fit), centred and inflated by
    sqrt(n / (n - 3)) for the three fitted parameters; None when there are no residual degrees of freedom."""
    r = -np.asarray(residuals, dtype=float)
    if len(r) <= 3:
        return None
    return (r - r.mean()) * np.sqrt(len(r) / (len(r) - 3))


def bootstrap_loss_law(x, fit: LossFit, reps: int, rng: np.random.Generator, starts: int = 1,
                       documents: tuple[np.ndarray, np.ndarray] | None = None, scatter: bool = True) -> np.ndarray:
    """[reps, 5] of (a, b, c, curve at x = 1, a new point at x = 1): a residual bootstrap about the fitted law.

    Each replicate builds new points on the fitted curve: fit(x_i) * exp(e_i), e_i drawn with replacement from
    the fit's centred, inflated log-residuals (``scatter_pool``), times, when ``documents`` = (token_counts,
    loss_sums) [checkpoint, document] are given, the ratio of a document-resampled mean loss to the observed
    one (documents are shared by every checkpoint, so their noise moves all points together). The law is refitted
    to those points; column 4 adds the target's own deviation from the law (one more draw of e) to its curve,
    so its spread is that of a new point, not of the curve alone.
    """
    x = np.asarray(x, dtype=float)
    base = fit.predict(x)
    pool = scatter_pool(fit.residuals) if scatter else None
    if documents is not None:
        tokens, sums = (np.asarray(d, dtype=float) for d in documents)
        observed = sums.sum(axis=1) / np.maximum(tokens.sum(axis=1), 1)
    out = np.empty((reps, 5))
    for i in range(reps):
        points = base.copy()
        if documents is not None:
            pick = rng.integers(0, tokens.shape[1], size=tokens.shape[1])
            points *= sums[:, pick].sum(axis=1) / np.maximum(tokens[:, pick].sum(axis=1), 1) / observed
        if pool is not None:
            points *= np.exp(rng.choice(pool, size=len(points)))
        refit = fit_loss_law(x, points, starts=starts, init=(fit.a, fit.b, fit.c))
        curve = refit.a + refit.c
        out[i] = (refit.a, refit.b, refit.c, curve, curve * (np.exp(rng.choice(pool)) if pool is not None else 1.0))
    return out


def frontier_mask(compute, loss) -> np.ndarray:
    """True for runs whose loss is below that of every run with less compute (the compute-optimal frontier)."""
    compute, loss = np.asarray(compute, dtype=float), np.asarray(loss, dtype=float)
    keep = np.zeros(len(loss), dtype=bool)
    for i in range(len(loss)):
        less = compute < compute[i]
        keep[i] = not less.any() or loss[i] < loss[less].min()
    return keep


@dataclass
class BacktestError:
    """A law fitted on the points up to ``cut`` (normalised compute) forecasting a larger point."""

    cut: float
    x: float
    decades: float       # log10(x / cut)
    log_error: float     # log(forecast) - log(observed)


def rolling_backtests(x, loss, init: tuple | None = None, min_points: int = 4, min_decades: float = 0.25,
                      min_span: float = 0.5, max_origins: int = 12) -> list[BacktestError]:
    """Rolling-origin backtests inside the fit data: for up to ``max_origins`` cuts (evenly spaced in log compute,
    each leaving at least ``min_points`` below it), fit on the points up to the cut and forecast every point at
    least ``min_decades`` beyond it.

    Only cuts whose fitted points span at least ``min_span`` of the whole fit's log-compute range are used (a
    backtest should resemble the real forecast, made from the whole span; laws bend most at small compute, so
    short early spans overstate the misfit), unless fewer than 3 such cuts exist; then every cut is used.
    """
    order = np.argsort(x)
    x, loss = np.asarray(x, dtype=float)[order], np.asarray(loss, dtype=float)[order]
    cuts = [k for k in range(min_points, len(x)) if x[k - 1] < x[k] and np.log10(x[-1] / x[k - 1]) >= min_decades]
    long_enough = [k for k in cuts if np.log(x[k - 1] / x[0]) >= min_span * np.log(x[-1] / x[0])]
    cuts = long_enough if len(long_enough) >= 3 else cuts
    if len(cuts) > max_origins:
        logs = np.log10(x[np.array(cuts) - 1])
        wanted = np.linspace(logs[0], logs[-1], max_origins)
        cuts = sorted({cuts[int(np.argmin(np.abs(logs - w)))] for w in wanted})
    out = []
    for k in cuts:
        fit = fit_loss_law(x[:k], loss[:k], starts=1 if init is not None else 3, init=init)
        far = np.log10(x[k:] / x[k - 1]) >= min_decades
        for xj, yj in zip(x[k:][far], loss[k:][far]):
            out.append(BacktestError(float(x[k - 1]), float(xj), float(np.log10(xj / x[k - 1])),
                                     float(np.log(fit.predict(xj)) - np.log(yj))))
    return out


def identifiability(fit: LossFit, reps: np.ndarray | None, points: int, level: float) -> list[str]:
    """Plain statements about how well a, b, c are pinned down by these points; the a-c trade-off only when c
    is poorly determined (a and c always correlate; it matters only when c itself is read)."""
    notes = []
    if points == 3:
        notes.append("3 parameters through 3 points: the law passes through every point; no residual degrees "
                     "of freedom, so the fit cannot be checked against its own data")
    if reps is None or len(reps) < 10:
        notes.append("no bootstrap: no interval on a, b, c")
        return notes
    lo, hi = np.percentile(reps[:, 2], [50 * (1 - level), 100 - 50 * (1 - level)])
    if hi - lo > 0.5 * max(fit.c, 1e-9) or lo <= 1e-9:
        corr = float(np.corrcoef(reps[:, 0], reps[:, 2])[0, 1]) if np.std(reps[:, 2]) > 0 else 0.0
        trade = (f"; it trades off against a (bootstrap correlation {corr:+.2f}), so read a + c, the forecast, "
                 f"rather than either alone") if abs(corr) > 0.8 else ""
        notes.append(f"the irreducible loss c is poorly determined: {level:.0%} interval [{lo:.3g}, {hi:.3g}]"
                     + trade)
    if np.mean(reps[:, 2] <= 1e-6) > 0.05:
        notes.append("c sits at its bound 0 in some replicates: the data do not show a floor yet")
    return notes
