"""Per-problem laws as posterior draws, stacked across laws and calibrated by rolling-origin backtests.

- ``law_forecast``: one law (``power`` = log-log link, ``sigmoid`` = logit link, see problem_laws) fitted
  hierarchically, then draws of every problem's log pass rate on a compute grid from its exact posterior
  (pipeline.forecast.posterior), with the pooled prior's own uncertainty shared by all problems.
- ``stacked_forecast``: shared per-checkpoint shocks are estimated and taken out of every fit; every law is
  refitted on the smaller checkpoints and scored on the larger fit checkpoints it did not see
  (leave-future-out); the laws' draws are mixed by pseudo-BMA weights from those held-out densities, where a
  lead over the reference (power) law within its own noise counts for nothing. Their departure from the
  report's aggregate line is kept only as far as it stands out of its own noise (pipeline.forecast.departure). The
  same folds measure how far the mixture's forecast of E_P[log p] misses at each distance; that miss rate
  (per e-fold of compute, beyond what the draws already allow for), the shock shared by a checkpoint's
  problems and an allowance for misspecification the fit range cannot show widen the final draws; where the folds
missed by less than the draws allowed, the better half of the draws is narrowed to that.

Everything downstream (overall forecast, buckets, curve, measurement interval) is a mean over problems
of the same draws, so the parts add up to the whole.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import gammaln, logsumexp

from pipeline.forecast.departure import keep_departure
from pipeline.forecast.posterior import SHOCK_MIN_DOF, checkpoint_shocks, posterior_draws, shock_offsets
from pipeline.registry import Registry
from pipeline.forecast.problem_laws import ETA_MAX, ETA_MIN, _log1m_exp_neg, fit_hierarchical, log_pass

LAWS = Registry("law", {"power": "loglog", "sigmoid": "logit"})   # law -> link
MISS_RATE_UNCALIBRATED = 0.17  # rho when no fold exists (3 fit checkpoints): from real families' 3-checkpoint
                                # backtests (embedded reference family: misses of 1.2-2.5 in log at 0.5-2.4 e-folds)
UNREVEALED_PER_EFOLD = 0.025 # kappa: how much worse per e-fold beyond the data unrevealed misspecification may
                             # make the target (docs/forecasting.md, "Calibration")
SPREAD_PRIOR_ROWS = 2.0   # pseudo-rows at r = s behind the folds' spread ratio (_rolling_miss): one fold's ratio
                          # alone (4 checkpoints) shrinks the optimistic side by at most 18%
SPREAD_MIN = 0.5          # the optimistic side keeps at least half of the laws' own spread
MAX_FOLDS = 4
LEAD_Z = 2.0        # another law takes weight from the reference (power) law only by what its held-out lead
                    # exceeds LEAD_Z standard errors of the per-problem differences (evidence_weights)
FOLD_DRAWS = 300
DEPARTURE_DRAWS = 100   # per bootstrap table of pipeline.forecast.departure
TRUNCATED = True    # condition on the selection (c >= 1 at every fit checkpoint); the pooled difficulty prior bounds p -> 0


@dataclass
class LawForecast:
    """One law's draws: log pass rate [draw, problem, grid]."""

    law: str
    log_p: np.ndarray
    k: np.ndarray                      # [problem] fitted exponent (slope in log C)
    ess: np.ndarray                    # [problem] importance-sampling effective sample size


@dataclass
class Stacked:
    """The combined draws and how they were combined and widened."""

    log_p: np.ndarray                  # [draw, problem, grid], the laws' draws mixed by weight
    scale: np.ndarray                  # [draw, grid] multiplicative widening of -log p (miss rate, shock)
    law_of_draw: np.ndarray            # [draw] index into laws
    k: np.ndarray                      # [problem] weight-averaged exponent
    details: dict = field(default_factory=dict)


def fit_law(x: np.ndarray, n: np.ndarray, passed: np.ndarray, law: str, offset: np.ndarray | None = None):
    """One law's hierarchical fit (selection-conditioned when every count is >= 1)."""
    return fit_hierarchical(x, n, passed, truncated=TRUNCATED and bool(np.all(passed >= 1)), link=LAWS[law],
                            offset=offset)


def law_forecast(x: np.ndarray, n: np.ndarray, passed: np.ndarray, grid: np.ndarray, law: str, draws: int,
                 rng: np.random.Generator, offset: np.ndarray | None = None, fitted=None) -> LawForecast:
    """Draws of one law on ``grid``; ``fitted``: its fit on exactly these data, when already made."""
    link = LAWS[law]
    laws = fitted if fitted is not None else fit_law(x, n, passed, law, offset)
    post = posterior_draws(laws, x, n, passed, draws, rng)
    v, k = post.v, post.k
    if laws.prior_cov is not None:   # the pooled prior is itself estimated: a shift shared by all problems
        shift_b = rng.multivariate_normal(np.zeros(len(laws.prior_cov)), laws.prior_cov, size=draws)
        prior_shift = shift_b @ laws.prior_design.T                                   # [draw, problem]
        gain = laws.cov[:, :, 1] / laws.k_prior_sd[:, None] ** 2                      # d posterior / d prior mean
        v, k = v + prior_shift * gain[None, :, 0], k + prior_shift * gain[None, :, 1]
    eta = np.clip(v[:, :, None] - k[:, :, None] * (grid - laws.x_bar)[None, None, :], ETA_MIN, ETA_MAX)
    return LawForecast(law, log_pass(eta, link), laws.k, post.ess)


def heldout_log_density(log_p: np.ndarray, n: np.ndarray, passed: np.ndarray, truncated: bool) -> np.ndarray:
    """[problem] log predictive density of held-out counts [ckpt, problem] under draws log_p [draw, problem, ckpt]."""
    log_p = np.minimum(log_p, -1e-12)
    log_q = _log1m_exp_neg(-log_p)
    nn, cc = n.T[None], passed.T[None]                                   # [1, problem, ckpt]
    dens = gammaln(nn + 1) - gammaln(cc + 1) - gammaln(nn - cc + 1) + cc * log_p + (nn - cc) * log_q
    if truncated:   # log(1 - q^n), also where q^n rounds to 1
        a = -nn * log_q
        dens = dens - _log1m_exp_neg(np.where(a > 1e-12, a, nn * np.exp(log_p)))
    return logsumexp(dens.sum(axis=2), axis=0) - np.log(log_p.shape[0])


def evidence_weights(lpd: np.ndarray) -> np.ndarray:
    """Pseudo-BMA weights from leave-future-out densities [law, problem-fold]; row 0 is the reference law.

    w_L proportional to exp(sum_i lpd[L, i] - LEAD_Z se_L) for L != 0, se_L the standard error of the summed
    per-problem differences lpd[L] - lpd[0]; equal weights when no fold exists. The default's choice
    (docs/forecasting.md): every problem of a family follows the same kind of law, so the question is which law,
    not which blend per problem; stacking answers the latter, and on families where two laws tie at the fold
    distances (4 checkpoints, n = 20) its blends carried a law that is 25-35% off at the target into the
    forecast. The reference law is the report's (the power law): a lead smaller than its own noise (one fold of
    one checkpoint, a shock) is no evidence, and it had given the sigmoid up to all of the weight on
    power-law families.
    """
    if lpd.shape[1] == 0:
        return np.full(lpd.shape[0], 1.0 / lpd.shape[0])
    total = lpd.sum(axis=1)
    se = np.std(lpd - lpd[:1], axis=1) * np.sqrt(lpd.shape[1])
    total = total - LEAD_Z * se
    return np.exp(total - logsumexp(total))


def _measured_draws(log_p: np.ndarray, n: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[draw] what n samples per problem would measure as E_P[log(c/n)] over the problems solved (c >= 1)."""
    c = rng.binomial(np.broadcast_to(n.astype(np.int64), log_p.shape), np.exp(log_p))
    logs = np.where(c > 0, np.log(np.maximum(c, 1) / np.maximum(n, 1)[None, :]), np.nan)
    solved = np.any(c > 0, axis=1)
    out = np.full(log_p.shape[0], np.nan)
    out[solved] = np.nanmean(logs[solved], axis=1)
    return out


def stacked_forecast(x: np.ndarray, n: np.ndarray, passed: np.ndarray, grid: np.ndarray, draws: int,
                     rng: np.random.Generator, laws: tuple[str, ...] = tuple(LAWS), calibrate: bool = True) -> Stacked:
    """Fit every law, weight them by their leave-future-out densities, widen the mixture (see _widening)."""
    order = np.argsort(x)
    x, n, passed = x[order], n[order], passed[order]
    folds = min(MAX_FOLDS, len(x) - 3) if calibrate or len(laws) > 1 else 0   # one law uncalibrated: no use
    first = fit_law(x, n, passed, laws[0])   # estimates the shared shocks (posterior.shock_offsets)
    if calibrate:   # take them out of every law's fit
        shock_sd, offset = shock_offsets(first, x, n, passed)
    else:
        shock_sd, offset = checkpoint_shocks(first, x, n, passed)[0], np.zeros(len(x))
    lpd = [[] for _ in laws]
    rolling = [[] for _ in laws]      # per law: (held-out index, fit largest x, log(-pred) draws) per fold
    for h in range(1, folds + 1):
        fit_x, fit_n, fit_c = x[:-h], n[:-h], passed[:-h]
        held = slice(len(x) - h, len(x))
        truncated = TRUNCATED and bool(np.all(fit_c >= 1))
        # the held-out checkpoints' own shocks are not known to the fold: its scored draws carry them
        shock = (shock_sd if calibrate else 0.0) * np.sqrt(1.0 + _leverage(fit_x, x[held]))
        for li, law in enumerate(laws):
            fc = law_forecast(fit_x, fit_n, fit_c, x[held], law, FOLD_DRAWS, rng, offset=offset[:-h])
            shocked = fc.log_p * np.exp(shock[None, None, :] * rng.standard_normal((FOLD_DRAWS, 1, h)))
            lpd[li].append(heldout_log_density(shocked, n[held], passed[held], truncated))
            rolling[li].append((h, fc.log_p))
    lpd_matrix = np.array([np.concatenate(l) if l else np.zeros(0) for l in lpd])
    weights = evidence_weights(lpd_matrix)
    unshocked = first if not offset.any() else None   # that fit is this one: reuse it
    fits = [law_forecast(x, n, passed, grid, law, draws, rng, offset=offset,
                         fitted=unshocked if law == laws[0] else None) for law in laws]
    counts = rng.multinomial(draws, weights) if len(laws) > 1 else np.array([draws])
    law_of_draw = np.repeat(np.arange(len(laws)), counts)
    log_p = np.concatenate([f.log_p[:c] for f, c in zip(fits, counts)], axis=0)
    departure = {"applied": False, "reason": "uncalibrated method"}
    if calibrate and laws[0] == "power":   # keep the departure from the report's line only where it stands out
        p_fit = np.exp(log_pass(first.fit_eta(x), first.link))
        log_p, departure = keep_departure(log_p, x, n, passed, grid, p_fit, _power_mean, rng, float(weights[0]))
    miss = _rolling_miss(x, n, passed, rolling, weights, rng, shock_sd) if calibrate else {"folds": 0, "rate": 0.0}
    rate = miss["rate"]
    top = np.log(passed[-1] / n[-1]).mean() if np.all(passed[-1] > 0) else None
    scale = (_widening(x, grid, log_p, rate, miss["folds"], shock_sd, rng, top, miss["spread_ratio"]) if calibrate
             else np.ones((draws, len(grid))))
    d = np.maximum(grid - float(x.max()), 0.0)
    k = np.sum(weights[:, None] * np.array([f.k for f in fits]), axis=0)
    details = {"laws": list(laws), "weights": {law: float(w) for law, w in zip(laws, weights)},
               "leave_future_out_folds": folds, "shock_sd": shock_sd, "miss_rate_per_efold": rate,
               "rolling": miss, "extrapolation_efolds": float(d[-1]),
               "min_importance_ess": float(min(f.ess.min() for f in fits)), "departure_from_aggregate": departure}
    return Stacked(log_p, scale, law_of_draw, k, details)


def _power_mean(x: np.ndarray, n: np.ndarray, passed: np.ndarray, target: float, rng: np.random.Generator) -> float:
    """The per-problem power law's forecast mean of log p at ``target`` (the departure's bootstrap)."""
    return float(law_forecast(x, n, passed, np.array([target]), "power", DEPARTURE_DRAWS, rng).log_p.mean())


def _widening(x: np.ndarray, grid: np.ndarray, log_p: np.ndarray, rate: float, folds: int, shock_sd: float,
              rng: np.random.Generator, measured_top: float | None = None, spread: float = 1.0) -> np.ndarray:
    """[draw, grid] factors on -log p: the backtests' miss rate, the shared shock, unrevealed misspecification.

    - spread: the better half of the laws' own draws is pulled towards their median by the factor ``spread``
      <= 1 in log, the ratio of the misses the folds measured to the spread the draws gave them
      (_rolling_miss). The worse half keeps the laws' spread: beyond the data it also carries what the folds
      cannot see (unrevealed, below);
    - miss: exp(rho d t), t Student with (folds + 1) degrees of freedom (Cauchy with no fold), d = e-folds beyond
      the largest fit checkpoint;
    - shock: the fit checkpoints' shocks that stay in the laws (leverage) and the target's own shock, Student-t
      with the J - 3 degrees of freedom its sd was estimated with;
    - unrevealed: exp(kappa d u), u ~ U(0, 1), on the worse half of the draws only (the optimistic end and the
      median stay where the laws put them): misspecification the fit range cannot show only ever makes the
      average worse: per-problem laws that bend either way raise the mean -log p (Jensen), failure floors
      and saturation keep p from 1;
    - never absurd: a draw is not made worse than the largest fit checkpoint already is, by its own law's value
      there or by ``measured_top`` (its measured mean log pass rate), whichever is worse: the family does not
      get worse with scale unless its law or its data say so.
    """
    draws = log_p.shape[0]
    x_top = float(x.max())
    d = np.maximum(grid - x_top, 0.0)
    dof = folds + 1.0
    t = rng.standard_normal(draws) / np.sqrt(rng.chisquare(dof, size=draws) / dof)
    shock_grid = shock_sd * np.sqrt(_leverage(x, grid) + np.minimum(1.0, 10 * d))
    shock_dof = max(len(x) - 3, SHOCK_MIN_DOF)   # the shock sd is estimated with J - 3 dof: t, not normal
    shock_t = rng.standard_normal(draws) / np.sqrt(rng.chisquare(shock_dof, size=draws) / shock_dof)
    log_lam = np.log(np.maximum(-log_p.mean(axis=1), 1e-300))             # [draw, grid]
    better = np.minimum(log_lam - np.median(log_lam, axis=0, keepdims=True), 0.0)
    log_scale = ((spread - 1.0) * better + rate * d[None, :] * t[:, None]
                 + shock_grid[None, :] * shock_t[:, None])
    log_widened = log_lam + log_scale
    pessimistic = log_widened > np.median(log_widened, axis=0, keepdims=True)   # the worse half of the draws
    log_scale = log_scale + UNREVEALED_PER_EFOLD * d[None, :] * rng.random(draws)[:, None] * pessimistic
    j = int(np.clip(np.searchsorted(grid, x_top) - 1, 0, len(grid) - 2))    # grid[j] <= x_top <= grid[j + 1]
    u = (x_top - grid[j]) / (grid[j + 1] - grid[j])
    lam_top = np.exp((1 - u) * log_lam[:, j] + u * log_lam[:, j + 1])   # each draw's law at the largest checkpoint
    if measured_top is not None and measured_top < 0:
        lam_top = np.maximum(lam_top, -measured_top)
    cap = np.maximum(np.log(lam_top)[:, None] - log_lam, 0.0)
    return np.exp(np.where(d[None, :] > 0, np.minimum(log_scale, cap), log_scale))


def _rolling_miss(x, n, passed, rolling, weights, rng, shock_sd: float = 0.0) -> dict:
    """Miss rate per e-fold: rho^2 = max(sum_f (r_f^2 - s_f^2 - v_f) / d_f^2, 0) / F, over the F held-out rows;
    and the spread ratio (spread_ratio) of max(r_f^2 - v_f, 0) to s_f^2, with SPREAD_PRIOR_ROWS pseudo-rows at
    r = s: how much narrower than their draws the laws' misses were (< 1 when the draws were over-dispersed).

    r_f: log of the measured aggregate at a held-out fit checkpoint over the mixture's median forecast of
    that measurement; s_f: the spread the forecast draws already give it; v_f: what the shared shocks explain
    there (they are added separately); d_f: e-folds beyond the fold's largest checkpoint. The excess is what
    no law's draws allowed for; misspecification that the fit range cannot show is allowed for separately
    (UNREVEALED_PER_EFOLD), not by inflating this rate.
    """
    excess, rows, seen, spread = [], [], [], []
    for fold in range(len(rolling[0]) if rolling and rolling[0] else 0):
        h, _ = rolling[0][fold]
        counts = rng.multinomial(FOLD_DRAWS, weights)
        mix = np.concatenate([rolling[li][fold][1][:c] for li, c in enumerate(counts)], axis=0)   # [draw, problem, held]
        top = float(x[len(x) - h - 1])
        lever = _leverage(x[:len(x) - h], x[len(x) - h:])
        for j, col in enumerate(range(len(x) - h, len(x))):
            measured = np.mean(np.log(passed[col] / n[col]))
            pred = _measured_draws(mix[:, :, j], n[col], rng)
            pred = pred[np.isfinite(pred) & (pred < 0)]
            if measured >= 0 or len(pred) < 10:
                continue
            lp = np.log(-pred)
            r, s, dist = float(np.log(-measured) - np.median(lp)), float(np.std(lp)), float(x[col] - top)
            shocked = shock_sd**2 * (1 + lever[j])
            excess.append((r * r - s * s - shocked) / max(dist, 0.05) ** 2)
            seen.append(max(r * r - shocked, 0.0))
            spread.append(s * s)
            rows.append({"held_out": col, "efolds": dist, "log_ratio": r, "draw_sd": s})
    if not excess:   # nothing measured on this family: the prior from real families, with Cauchy tails (t, 1 dof)
        return {"folds": 0, "rate": MISS_RATE_UNCALIBRATED, "rows": rows, "spread_ratio": 1.0}
    return {"folds": len(excess), "rate": float(np.sqrt(max(np.sum(excess), 0.0) / len(excess))), "rows": rows,
            "spread_ratio": spread_ratio(np.array(seen), np.array(spread))}


def spread_ratio(seen: np.ndarray, spread: np.ndarray) -> float:
    """g = sqrt((sum seen + R mean(spread)) / (sum spread + R mean(spread))) in [SPREAD_MIN, 1]; 1 with no row.

    seen: the folds' squared misses net of the shocks' part; spread: the squared spread their draws gave them."""
    if len(spread) == 0:
        return 1.0
    prior = SPREAD_PRIOR_ROWS * float(np.mean(spread))
    ratio = (float(np.sum(seen)) + prior) / max(float(np.sum(spread)) + prior, 1e-300)
    return float(np.sqrt(np.clip(ratio, SPREAD_MIN**2, 1.0)))


def _leverage(x: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """d' (X'X)^-1 d for a line in log C fitted to the checkpoints, at each grid point."""
    design = np.stack([np.ones_like(x), x - x.mean()], axis=1)
    inv = np.linalg.inv(design.T @ design)
    g = np.stack([np.ones_like(grid), grid - x.mean()], axis=1)
    return np.einsum("gi,ij,gj->g", g, inv, g)


def subset_summary(log_p: np.ndarray, scale: np.ndarray, index: np.ndarray, level: float) -> dict:
    """Point (posterior mean), interval and curve of E_P[log p] over the problems ``index``, from the same draws.

    The point is the mean over draws of the mean over problems, so a problem-weighted mean of subset points
    is the whole's point; the interval comes from the widened draws and always contains the point.
    """
    from pipeline.forecast.estimate import percentile_interval

    mean = log_p[:, index, :].mean(axis=1)                      # [draw, grid]
    curve = mean.mean(axis=0)
    lo, hi = percentile_interval(mean * scale, level, axis=0)
    lo, hi = np.minimum(lo, curve), np.maximum(hi, curve)
    return {"value": float(curve[-1]), "interval": (float(lo[-1]), float(hi[-1])),
            "curve": curve, "curve_lo": lo, "curve_hi": hi, "draws": mean[:, -1] * scale[:, -1]}
