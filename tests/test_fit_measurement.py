"""The measurement interval: what the target's sample budget will measure, the band an actual is judged by."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from pipeline.forecast.fit import FitOptions, judged_interval

from pipeline.forecast.capability import forecast_from_counts
from pipeline.forecast.methods import measurement_interval
from simulated.family import TARGET_NAME, FamilySpec, sample_counts, simulate_family

FAST = FitOptions(bootstrap=200)


def test_certain_passes_measure_exactly_zero():
    lo, hi = measurement_interval(np.ones((100, 5)), np.full(5, 20.0), 0.9, np.random.default_rng(0))
    assert (lo, hi) == (0.0, 0.0)


def test_nothing_solvable_gives_no_interval():
    assert measurement_interval(np.zeros((50, 3)), np.full(3, 20.0), 0.9, np.random.default_rng(0)) is None


def test_interval_covers_independent_measurements_at_its_level():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.6, 0.99, size=30)
    n = np.full(30, 20.0)
    lo, hi = measurement_interval(np.tile(p, (4000, 1)), n, 0.9, rng)
    measured = [np.mean(np.log(c[c > 0] / 20)) for c in rng.binomial(20, p, size=(500, 30))]
    assert 0.86 <= np.mean([(lo <= m <= hi) for m in measured]) <= 0.94


def test_measurement_interval_is_wider_than_the_true_value_interval_for_few_samples():
    rng = np.random.default_rng(2)
    p = np.clip(rng.uniform(0.7, 0.95, size=20)[None] * rng.uniform(0.97, 1.0, size=(2000, 1)), 0, 1)
    truth = np.mean(np.log(p), axis=1)
    lo, hi = measurement_interval(p, np.full(20, 10.0), 0.9, rng)
    assert lo < np.quantile(truth, 0.05) and hi > np.quantile(truth, 0.95)


@pytest.fixture(scope="module")
def counts():
    family = simulate_family(FamilySpec(n_problems=60, target_factor=20), seed=3)
    return sample_counts(family, 50, np.random.default_rng(3))


def test_forecast_with_target_counts_records_the_measurement_interval(counts):
    pred = forecast_from_counts(counts, None, None, FAST)["prediction"]
    assert pred["measurement_n"] == 50
    lo, hi = pred["measurement_interval"]
    assert lo <= hi and judged_interval(pred) == [lo, hi]


def test_registered_forecast_uses_the_planned_sample_budget(counts):
    target_compute = next(c.compute for c in counts if c.checkpoint == TARGET_NAME)
    before = [c for c in counts if c.checkpoint != TARGET_NAME]
    pred = forecast_from_counts(before, TARGET_NAME, target_compute, replace(FAST, target_n=7))["prediction"]
    assert pred["measurement_n"] == 7


def test_without_a_known_budget_the_forecast_interval_judges(counts):
    target_compute = next(c.compute for c in counts if c.checkpoint == TARGET_NAME)
    before = [c for c in counts if c.checkpoint != TARGET_NAME]
    pred = forecast_from_counts(before, TARGET_NAME, target_compute, FAST)["prediction"]
    assert "measurement_interval" not in pred and judged_interval(pred) == pred["interval"]


def test_aggregate_method_has_no_measurement_interval(counts):
    pred = forecast_from_counts(counts, None, None, replace(FAST, method="aggregate"))["prediction"]
    assert "measurement_interval" not in pred
