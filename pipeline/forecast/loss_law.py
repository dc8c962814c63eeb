"""Fit the loss law L(C) = a * C**b + c (Huber on log L, grid of starts, L-BFGS) and bootstrap it.

Compute is normalised so the target has C = 1: ``a`` is then the reducible loss at the target and
a + c the forecast. With few points c trades off against a (a lower floor is matched by a larger,
flatter power term); ``identifiability`` says so in numbers instead of hiding it.
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
    residuals: np.ndarray

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
    grid = itertools.product(np.linspace(-1.0, 2.0, starts),          # log a (nats, at the target)
                             np.linspace(-0.5, -0.02, starts),       # b
                             np.linspace(0.0, 0.95, starts) * c_hi)  # c
    if init is not None:
        a0, b0, c0 = init
        grid = itertools.chain([(np.log(max(a0, 1e-12)), b0, min(c0, c_hi))], grid)
    for log_a, b, c in grid:
        res = optimize.minimize(_objective, np.array([log_a, b, c]), args=(logx, logy, delta), jac=True,
                                method="L-BFGS-B", bounds=[(-20, 20), (-3.0, 0.0), (0.0, c_hi)],
                                options={"ftol": 1e-13, "gtol": 1e-9, "maxiter": 1000})
        if best is None or res.fun < best.fun:
            best = res
    log_a, b, c = best.x
    fit = LossFit(float(np.exp(log_a)), float(b), float(c), float(best.fun), np.zeros(0))
    fit.residuals = np.log(fit.predict(x)) - logy
    return fit


def bootstrap_loss_law(x, token_counts: np.ndarray, loss_sums: np.ndarray, reps: int,
                       rng: np.random.Generator, starts: int = 1, init: tuple | None = None,
                       residuals: np.ndarray | None = None) -> np.ndarray:
    """[reps, 4] of (a, b, c, prediction at x = 1), resampling corpus documents (paired across checkpoints)
    and, when ``residuals`` (the fit's log-residuals) are given, the checkpoints' scatter about the law.

    token_counts and loss_sums are [checkpoint, document]; each replicate's mean loss per token is
    sum(loss) / sum(tokens) over the resampled documents. Documents are shared by every checkpoint, so their
    noise moves all points together; what a checkpoint's own training adds (seed, schedule, misfit) shows only
    in the residuals, which are centred, inflated by sqrt(n / (n - 3)) for the three fitted parameters and
    drawn with replacement onto the points (a residual bootstrap).
    """
    docs = token_counts.shape[1]
    scatter = None
    if residuals is not None and len(residuals) > 3:
        r = np.asarray(residuals, dtype=float)
        scatter = (r - r.mean()) * np.sqrt(len(r) / (len(r) - 3))
    out = np.empty((reps, 4))
    for i in range(reps):
        pick = rng.integers(0, docs, size=docs)
        mean = loss_sums[:, pick].sum(axis=1) / np.maximum(token_counts[:, pick].sum(axis=1), 1)
        if scatter is not None:
            mean = mean * np.exp(rng.choice(scatter, size=len(mean)))
        fit = fit_loss_law(x, mean, starts=starts, init=init)
        out[i] = (fit.a, fit.b, fit.c, fit.a + fit.c)
    return out


def identifiability(fit: LossFit, reps: np.ndarray | None, points: int, level: float) -> list[str]:
    """Plain statements about how well a, b, c are pinned down by these points."""
    notes = []
    if points == 3:
        notes.append("3 parameters through 3 points: the law passes through every point; no residual degrees "
                     "of freedom, so the fit cannot be checked against its own data")
    if reps is None or len(reps) < 10:
        notes.append("no bootstrap: intervals need per-document losses")
        return notes
    corr = float(np.corrcoef(reps[:, 0], reps[:, 2])[0, 1]) if np.std(reps[:, 2]) > 0 else 0.0
    lo, hi = np.percentile(reps[:, 2], [50 * (1 - level), 100 - 50 * (1 - level)])
    if abs(corr) > 0.8:
        notes.append(f"c trades off against a: their bootstrap correlation is {corr:+.2f}")
    if hi - lo > 0.5 * max(fit.c, 1e-9) or lo <= 1e-9:
        notes.append(f"the irreducible loss c is poorly determined: {level:.0%} interval [{lo:.3g}, {hi:.3g}]")
    if np.mean(reps[:, 2] <= 1e-6) > 0.05:
        notes.append("c sits at its bound 0 in some replicates: the data do not show a floor yet")
    return notes
