"""Unbiased log pass rates from "sample until r successes (or a budget)" designs (PassUntil, Hu et al. 2023).

With draws in sample_index order and N the index (1-based) of the r-th success,

    T_r(N) = -sum_{j=r}^{N-1} 1/j = digamma(r) - digamma(N)        is exactly unbiased for log p,
    V_r(N) =  sum_{j=r}^{N-1} 1/j**2 = trigamma(r) - trigamma(N)    is exactly unbiased for Var T_r.

Proof of the mean (r = 1 is the guide's -H_(N-1)): E[T_r] = -sum_{j>=r} P(N > j)/j, and P(N > j) =
P(S_j < r) with S_j the successes in j draws. Going from r-1 to r changes this sum by
sum_{j>=r} P(S_j = r-1)/j - P(S_{r-1} < r-1)/(r-1); since C(j, r-1)/j = C(j-1, r-2)/(r-1), the first
term is P(N_{r-1} >= r)/(r-1) = (1 - p**(r-1))/(r-1), which is the second: the sum does not depend
on r, and for r = 1 it is sum_j q**j/j = -log p. For the variance with r = 1, E[V_1] = Li_2(q) = Var T_1
(from log(1-q)**2 = 2 sum_n H_(n-1) q**n / n); for r >= 2 the identity is checked by exact summation in
tests/test_passuntil.py. docs/forecasting-ops.md has the full argument.

Truncation. With a budget of B draws no unbiased estimator of log p exists (the estimator takes finitely
many values, so its mean is bounded while log p is not). The truncated estimator T_r(min(N, B)) has mean
log p + tail(p), tail = sum_{j>=B} P(S_j < r)/j >= 0: it overstates log p by a known function of p,
which ``truncation_bias`` computes and each truncated cell reports at a lower confidence bound of p.

Order matters: N is read in sample_index order, never file order (``ordered_outcomes``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from scipy import special, stats

from sandbox.api import SANDBOX_ERROR

from pipeline.errors import UserError
from pipeline.records import BadInput, PassCount, read_jsonl

COMPLETE, TRUNCATED, PENDING = "complete", "truncated", "pending"
MISSING_STATUSES = {SANDBOX_ERROR}  # infrastructure failures: the draw's outcome is unknown


def log_p_estimate(n_draws, r: int = 1) -> np.ndarray:
    """-sum_{j=r}^{N-1} 1/j: unbiased for log p when N is the draw of the r-th success."""
    n_draws = np.asarray(n_draws, dtype=float)
    _check(n_draws, r)
    return special.digamma(r) - special.digamma(n_draws)


def variance_estimate(n_draws, r: int = 1) -> np.ndarray:
    """sum_{j=r}^{N-1} 1/j**2: unbiased for the variance of ``log_p_estimate``."""
    n_draws = np.asarray(n_draws, dtype=float)
    _check(n_draws, r)
    return special.polygamma(1, r) - special.polygamma(1, n_draws)


def _check(n_draws: np.ndarray, r: int) -> None:
    if int(r) != r or r < 1:
        raise UserError(f"the number of successes r must be a positive integer, got {r!r}")
    if np.any(n_draws < r):
        raise UserError(f"N (draws up to the r-th success) must be >= r = {r}; got {np.min(n_draws):g}")


def exact_moments(p: float, r: int = 1, budget: int | None = None, tol: float = 1e-13) -> tuple[float, float]:
    """Mean and variance of T_r(min(N, budget)) at pass rate p, by exact summation (budget None: no cap)."""
    if not 0 < p <= 1:
        raise UserError(f"pass rate must be in (0, 1], got {p}")
    hi = budget if budget is not None else int(stats.nbinom.isf(tol, r, p)) + r + 1
    n = np.arange(r, max(hi, r) + 1)
    pmf = stats.nbinom.pmf(n - r, r, p)
    if budget is not None:
        pmf[-1] += stats.nbinom.sf(budget - r, r, p)  # every N > budget is stopped at budget
    value = special.digamma(r) - special.digamma(n.astype(float))
    mean = float(np.sum(pmf * value))
    return mean, float(np.sum(pmf * (value - mean) ** 2))


def truncation_bias(p, r: int, budget: int) -> np.ndarray:
    """E[T_r(min(N, budget))] - log p = sum_{j>=budget} P(S_j < r)/j >= 0 (how far truncation overstates log p)."""
    p = np.atleast_1d(np.asarray(p, dtype=float))
    j = np.arange(r, budget)
    out = np.empty_like(p)
    for i, pi in enumerate(p):
        if pi <= 0:
            out[i] = np.inf
            continue
        kept = np.sum(stats.binom.cdf(r - 1, j, pi) / j) if len(j) else 0.0
        out[i] = max(-np.log(pi) - kept, 0.0)
    return out


def rth_success(outcomes: Sequence[bool], r: int) -> int | None:
    """1-based position of the r-th success in outcomes, or None when fewer than r succeed."""
    hits = np.flatnonzero(np.asarray(outcomes, dtype=bool))
    return int(hits[r - 1]) + 1 if len(hits) >= r else None


@dataclass
class CellEstimate:
    """The PassUntil estimate of log p for one (checkpoint, task_id) under its recorded stopping rule."""

    checkpoint: str
    task_id: str
    status: str              # complete (unbiased), truncated (budget hit; biased up), pending (needs draws)
    r: int
    budget: int
    start: int               # first sample_index of the sequential phase (earlier ones planned it)
    draws: int               # draws the stopping rule used (N, or budget, or what exists so far)
    successes: int
    log_p: float | None
    variance: float | None
    bias_bound: float | None = None  # truncated cells: bias at the 95% lower confidence bound of p


def estimate_cell(checkpoint: str, task_id: str, outcomes: Sequence[bool], r: int = 1,
                  budget: int = 1000, start: int = 0) -> CellEstimate:
    """Apply the stopping rule (r-th success or `budget` draws from index `start`) to ordered outcomes."""
    if budget < r:
        raise UserError(f"{checkpoint}/{task_id}: budget {budget} is below r = {r}")
    seq = list(outcomes)[start:start + budget]
    n = rth_success(seq, r)
    if n is not None:
        return CellEstimate(checkpoint, task_id, COMPLETE, r, budget, start, n, r,
                            float(log_p_estimate(n, r)), float(variance_estimate(n, r)))
    successes = int(sum(seq))
    if len(seq) < budget:
        return CellEstimate(checkpoint, task_id, PENDING, r, budget, start, len(seq), successes, None, None)
    value = float(special.digamma(r) - special.digamma(float(budget)))
    var = float(special.polygamma(1, r) - special.polygamma(1, float(budget)))
    p_low = stats.beta.ppf(0.05, successes, budget - successes + 1) if successes else 0.0
    return CellEstimate(checkpoint, task_id, TRUNCATED, r, budget, start, budget, successes, value, var,
                        float(truncation_bias(p_low, r, budget)[0]))


def mean_log_pass(cells: Iterable[CellEstimate], allow_truncated: bool = False) -> tuple[float, float]:
    """Mean of log p over cells and its standard error sqrt(sum V)/m (cells are independent)."""
    cells = list(cells)
    if not cells:
        raise UserError("no cells to average")
    bad = [c for c in cells if c.status == PENDING or (c.status == TRUNCATED and not allow_truncated)]
    if bad:
        c = bad[0]
        raise UserError(f"{len(bad)} cell(s) are {c.status} (e.g. {c.checkpoint}/{c.task_id}: "
                        f"{c.successes} of r={c.r} successes in {c.draws} draws); sample more "
                        f"(`capforecast plan`) or pass allow_truncated to accept their bias")
    values = np.array([c.log_p for c in cells])
    return float(values.mean()), float(np.sqrt(np.sum([c.variance for c in cells])) / len(cells))


def ordered_outcomes(rows: Iterable[tuple[str, int, dict]]) -> dict[tuple[str, str], list[bool]]:
    """(checkpoint, task_id) -> outcomes in sample_index order, cut at the first missing index.

    ``rows`` yields (source, line, verdict row); the last verdict per sample wins (resumed runs),
    and a ``sandbox error`` counts as missing: the sequence stops before it until it is re-judged.
    """
    latest: dict[tuple[str, str], dict[int, bool | None]] = {}
    for source, line, row in rows:
        for name in ("checkpoint", "task_id", "sample_index", "passed"):
            if name not in row:
                raise BadInput(f"{source}, line {line}: field '{name}' is missing (sequential designs "
                               f"need sample_index order)")
        index = row["sample_index"]
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise BadInput(f"{source}, line {line}: field 'sample_index' should be an integer >= 0, got {index!r}")
        outcome = None if row.get("status") in MISSING_STATUSES else bool(row["passed"])
        latest.setdefault((str(row["checkpoint"]), str(row["task_id"])), {})[index] = outcome
    out = {}
    for key, by_index in latest.items():
        seq: list[bool] = []
        while by_index.get(len(seq)) is not None:
            seq.append(by_index[len(seq)])
        out[key] = seq
    return out


def read_ordered_outcomes(verdicts_dir: str | Path) -> dict[tuple[str, str], list[bool]]:
    """ordered_outcomes over every verdicts/*.jsonl of a run directory."""
    paths = sorted(Path(verdicts_dir).glob("*.jsonl"))
    if not paths:
        raise UserError(f"{verdicts_dir}: no verdict files; run `capforecast execute` first")
    return ordered_outcomes((p, line, row) for p in paths for line, row in read_jsonl(p))


def prefix_counts(outcomes: dict, computes: dict[str, float], task_ids: list[str]) -> list[PassCount]:
    """Pass counts over each cell's contiguous sample_index prefix of judged samples (what a design reads)."""
    return [PassCount(name, float(compute), task, len(outcomes.get((name, task), [])),
                      int(sum(outcomes.get((name, task), []))))
            for name, compute in computes.items() for task in task_ids]
