"""Forecast accuracy and interval coverage on simulated families with known truth (issue 5's criteria)."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.forecast.fit import FitOptions, prepare, run_method
from simulated.family import FamilySpec, forecast_study, sample_counts, simulate_family


def _stats(rows, method):
    ok = [r for r in rows if r["method"] == method and r["error"] is None]
    return (float(np.median([abs(r["relative_error"]) for r in ok])), float(np.mean([r["covered"] for r in ok])))


def test_per_problem_recovers_noiseless_truth_with_many_samples():
    family = simulate_family(FamilySpec(noise_sd=0.0, non_monotone_fraction=0.0, target_factor=30), seed=1)
    options = FitOptions(bootstrap=200)
    data = prepare(sample_counts(family, 20000, np.random.default_rng(1), include_target=False), None,
                   family.target_compute, options)
    fit = run_method("per-problem", data.table, data.restriction.models, data.restriction.problems,
                     data.target_compute, options)
    truth = family.true_mean_log_pass_rate(data.restriction.problems)
    assert abs(fit.prediction - truth) < 0.01 * abs(truth)
    assert fit.interval[0] <= truth <= fit.interval[1]


def test_default_beats_aggregate_on_a_few_families():
    rows = forecast_study(12, n=100, draws=200, seed=3)
    per_problem, aggregate = _stats(rows, "per-problem"), _stats(rows, "aggregate")
    assert per_problem[0] <= 0.05 and per_problem[0] < aggregate[0]
    assert per_problem[1] >= 0.6


@pytest.mark.slow
def test_issue_criterion_error_and_coverage_over_200_families():
    rows = forecast_study(200, n=100, draws=400, seed=2024)
    (error, coverage), (aggregate_error, _) = _stats(rows, "per-problem"), _stats(rows, "aggregate")
    assert error <= 0.05 and error < aggregate_error
    assert 0.80 <= coverage <= 0.98


@pytest.mark.slow
def test_forecast_error_shrinks_as_budget_grows():
    small, large = forecast_study(40, n=25, draws=200, seed=5), forecast_study(40, n=400, draws=200, seed=5)
    assert _stats(large, "per-problem")[0] < _stats(small, "per-problem")[0]
