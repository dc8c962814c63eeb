"""Pure estimators over pass counts: pass rates, mean log pass rate, the P/M rule, bootstraps (pass@k: pipeline.passk).

All statistics here take plain arrays or a ``CountTable`` (checkpoints x problems) and return numbers;
no file I/O. Validated against simulated families in tests/test_estimate*.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.errors import UserError
from pipeline.records import PassCount

BOOTSTRAP_FLOOR = 0.5  # a resampled count of 0 becomes 0.5 (log 0 has no value); documented in docs


@dataclass
class CountTable:
    """Pass counts as a [checkpoint, problem] grid; checkpoints sorted by compute, n = 0 where missing."""

    checkpoints: list[str]
    compute: np.ndarray
    task_ids: list[str]
    n: np.ndarray
    passed: np.ndarray

    def select(self, checkpoints: list[str] | None = None, task_ids: list[str] | None = None) -> "CountTable":
        """The sub-table for these checkpoints and problems (order kept as given)."""
        rows = [self.checkpoints.index(c) for c in (checkpoints or self.checkpoints)]
        cols = [self.task_ids.index(t) for t in (task_ids if task_ids is not None else self.task_ids)]
        return CountTable([self.checkpoints[r] for r in rows], self.compute[rows],
                          [self.task_ids[c] for c in cols],
                          self.n[np.ix_(rows, cols)], self.passed[np.ix_(rows, cols)])


def count_table(counts: list[PassCount]) -> CountTable:
    """Build the grid; repeated (checkpoint, task_id) rows are summed (e.g. appended rounds)."""
    if not counts:
        raise UserError("no pass counts given")
    compute: dict[str, float] = {}
    for row in counts:
        seen = compute.setdefault(row.checkpoint, row.compute)
        if not np.isclose(seen, row.compute, rtol=1e-9):
            raise UserError(f"checkpoint {row.checkpoint!r} has two compute values: {seen:g} and {row.compute:g}")
    checkpoints = sorted(compute, key=lambda c: (compute[c], c))
    task_ids = sorted({row.task_id for row in counts}, key=_task_sort_key)
    r = {c: i for i, c in enumerate(checkpoints)}
    t = {c: i for i, c in enumerate(task_ids)}
    n = np.zeros((len(checkpoints), len(task_ids)), dtype=np.int64)
    passed = np.zeros_like(n)
    for row in counts:
        n[r[row.checkpoint], t[row.task_id]] += row.n
        passed[r[row.checkpoint], t[row.task_id]] += row.passed
    return CountTable(checkpoints, np.array([compute[c] for c in checkpoints]), task_ids, n, passed)


def _task_sort_key(task_id: str):
    head, _, tail = task_id.rpartition("/")
    return (head, int(tail)) if tail.isdigit() else (task_id, -1)


def pass_rate(passed, n) -> np.ndarray:
    """Per-problem pass rate c/n (unbiased for p); n must be positive."""
    passed, n = np.asarray(passed, dtype=float), np.asarray(n, dtype=float)
    if np.any(n <= 0):
        raise UserError("pass rate needs n >= 1 samples for every problem")
    return passed / n


def log_pass_rate(passed, n, bias_correction: bool = False) -> np.ndarray:
    """log(c/n) per problem; needs c >= 1 (no estimator of log p exists at c = 0 with fixed n).

    With ``bias_correction`` the second-order term (1 - c/n)/(2c) is added, removing the O(1/(np))
    downward bias of log(c/n) that Jensen's inequality causes.
    """
    passed, n = np.asarray(passed, dtype=float), np.asarray(n, dtype=float)
    if np.any(passed < 1):
        raise UserError("log pass rate is undefined for a problem never solved; restrict the problems first")
    value = np.log(passed / n)
    if bias_correction:
        value = value + (1.0 - passed / n) / (2.0 * passed)
    return value


@dataclass
class Restriction:
    """The report's rule: problems P and models M such that every model solves every problem at least once."""

    problems: list[str]
    models: list[str]
    excluded: list[dict] = field(default_factory=list)  # {"kind": "problem"|"model", "id", "reason"}


def restrict_solved_by_all(table: CountTable) -> Restriction:
    """Apply the P/M rule; models that solve nothing are dropped first (else P would be empty)."""
    excluded: list[dict] = []
    models = []
    for j, name in enumerate(table.checkpoints):
        if table.n[j].sum() == 0:
            excluded.append({"kind": "model", "id": name, "reason": "no samples"})
        elif table.passed[j].sum() == 0:
            excluded.append({"kind": "model", "id": name,
                             "reason": f"solves no problem in {int(table.n[j].sum())} samples"})
        else:
            models.append(j)
    problems = []
    for i, task in enumerate(table.task_ids):
        reason = None
        for j in models:
            if table.n[j, i] == 0:
                reason = f"no samples from {table.checkpoints[j]}"
                break
            if table.passed[j, i] == 0:
                reason = f"never solved by {table.checkpoints[j]} in {int(table.n[j, i])} samples"
                break
        if reason is None:
            problems.append(task)
        else:
            excluded.append({"kind": "problem", "id": task, "reason": reason})
    return Restriction(problems, [table.checkpoints[j] for j in models], excluded)


def mean_log_pass_rate(passed, n, bias_correction: bool = False) -> np.ndarray | float:
    """E_P[log(c/n)]: the mean over the last axis (problems, all solved) of log_pass_rate; the GPT-4 report's
    capability metric. The one place it is computed outside the fit methods' own arithmetic."""
    return np.mean(log_pass_rate(passed, n, bias_correction), axis=-1)


def bootstrap_mean_log(n: np.ndarray, passed: np.ndarray, reps: int, rng: np.random.Generator,
                       over_problems: bool = True, over_samples: bool = True) -> np.ndarray:
    """Bootstrap replicates [reps, checkpoint] of E_P[log pass rate], resampling problems and/or samples.

    Resampling samples draws each count from Binomial(n, c/n); a replicate count of 0 is floored at
    BOOTSTRAP_FLOOR so the replicate stays finite (it then errs low, as the estimator itself does).
    """
    m = n.shape[1]
    cols = rng.integers(0, m, size=(reps, m)) if over_problems else np.broadcast_to(np.arange(m), (reps, m))
    n_rep = n[:, cols].transpose(1, 0, 2)                       # [reps, ckpt, problem]
    c_rep = passed[:, cols].transpose(1, 0, 2).astype(float)
    if over_samples:
        c_rep = rng.binomial(n_rep.astype(np.int64), c_rep / n_rep).astype(float)
    c_rep = np.maximum(c_rep, BOOTSTRAP_FLOOR)
    return np.mean(np.log(c_rep / n_rep), axis=2)


def percentile_interval(replicates: np.ndarray, level: float, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed percentile interval of bootstrap replicates."""
    tail = 100 * (1 - level) / 2
    return np.percentile(replicates, tail, axis=axis), np.percentile(replicates, 100 - tail, axis=axis)


def basic_interval(estimate: float, replicates: np.ndarray, level: float) -> tuple[float, float]:
    """Basic (reflected) bootstrap interval [2e - q_hi, 2e - q_lo]: it also removes the estimator's bias,
    which log(c/n) has (percentile intervals of it covered 86% for a nominal 90%; these 90%)."""
    lo, hi = percentile_interval(np.asarray(replicates), level)
    return float(2 * estimate - hi), float(2 * estimate - lo)
