"""The per-problem laws' departure from the report's aggregate line is kept only where it stands out of its noise."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from pipeline.forecast.departure import DEPARTURE_Z, aggregate_line, keep_departure, kept_fraction
from pipeline.forecast.fit import FitOptions, prepare, run_method
from simulated.scenarios import SCENARIOS
from simulated.family import FamilySpec, sample_counts, simulate_family

OPTIONS = FitOptions(bootstrap=200, alternatives=False)


def _fits(spec: FamilySpec, n: int, seed: int = 1):
    family = simulate_family(spec, seed=seed)
    counts = sample_counts(family, n, np.random.default_rng(seed), include_target=False)
    data = prepare(counts, None, family.target_compute, OPTIONS)
    args = (data.table, data.restriction.models, data.restriction.problems, data.target_compute, OPTIONS)
    return run_method("stacked", *args), run_method("aggregate", *args)


@pytest.mark.parametrize("z", [0.0, 1.0, -1.5, DEPARTURE_Z, float("nan")])
def test_a_departure_within_its_noise_is_not_kept(z):
    assert kept_fraction(z) == 0.0


@pytest.mark.parametrize("z", [7.0, -7.0])
def test_a_clear_departure_is_kept_almost_whole(z):
    assert kept_fraction(z) > 0.99


def test_the_kept_share_grows_with_the_departure():
    shares = [kept_fraction(z) for z in np.linspace(2.0, 10.0, 30)]
    assert np.all(np.diff(shares) > 0)


@pytest.mark.parametrize("zero_at", [(0, 0), (2, 5)])
def test_the_line_has_no_value_where_a_count_is_zero(zero_at):
    passed = np.full((4, 10), 5.0)
    passed[zero_at] = 0.0
    assert aggregate_line(np.arange(4.0), np.full((4, 10), 20.0), passed) is None


def test_without_a_line_the_draws_are_left_as_they_are():
    log_p = -np.random.default_rng(0).random((5, 10, 3))
    passed = np.zeros((4, 10))
    out, details = keep_departure(log_p, np.arange(4.0), np.full((4, 10), 20.0), passed, np.array([4.0, 5.0, 6.0]),
                                  np.full((4, 10), 0.5), lambda *a: 0.0, np.random.default_rng(0))
    assert out is log_p and not details["applied"]


def test_the_sigmoids_share_of_the_forecast_is_not_pulled_to_the_line():
    rng = np.random.default_rng(0)
    log_p = -rng.random((5, 10, 3)) - 0.1
    n, passed = np.full((4, 10), 20.0), np.full((4, 10), 10.0)
    out, details = keep_departure(log_p, -np.arange(4.0)[::-1] - 1, n, passed, np.array([-2.0, -1.0, 0.0]),
                                  np.full((4, 10), 0.5), lambda *a: float(rng.normal(-0.7, 0.01)), rng,
                                  power_weight=0.0)
    assert details["kept"] == 1.0 and np.allclose(out, log_p)


@pytest.fixture(scope="module")
def one_law_few():
    # one exponent for every problem: the report's line is the right law and the per-problem laws only add noise
    return _fits(replace(SCENARIOS["few"].spec, k_spread=0.0), 20)


def test_on_few_samples_and_checkpoints_of_one_law_the_forecast_is_the_lines(one_law_few):
    stacked, aggregate = one_law_few
    departure = stacked.details["departure_from_aggregate"]
    assert abs(departure["z"]) < DEPARTURE_Z
    assert stacked.prediction == pytest.approx(aggregate.prediction, rel=1e-6)


def test_a_departure_the_data_show_clearly_is_kept():
    # heterogeneous exponents, 100 samples, 7 checkpoints: the line is ~15% off and the data say so
    stacked, aggregate = _fits(SCENARIOS["power"].spec, 100)
    departure = stacked.details["departure_from_aggregate"]
    assert departure["kept"] > 0.9
    assert abs(stacked.prediction / aggregate.prediction - 1) > 0.08


def test_the_forecast_still_lies_inside_its_interval_after_the_pull(one_law_few):
    stacked, _ = one_law_few
    assert stacked.interval[0] <= stacked.prediction <= stacked.interval[1]


def _methods_note(departure: dict, rolling: dict | None = None) -> str:
    from pathlib import Path

    from pipeline.report.inputs import RunInputs
    from pipeline.report.tables import methods_table

    forecast = {"method": "stacked", "prediction": {"value": -0.5, "interval": [-0.7, -0.4], "level": 0.9},
                "alternatives": {"aggregate": {"prediction": {"value": -0.52, "interval": [-0.6, -0.45]}}},
                "law": {"departure_from_aggregate": departure, "rolling": rolling or {}}}
    return methods_table(RunInputs(Path("."), forecast=forecast)).note


def test_the_report_says_how_much_of_the_departure_the_forecast_kept():
    note = _methods_note({"applied": True, "departure": -0.04, "departure_sd": 0.04, "z": -1.0, "kept": 0.0})
    assert "-4%" in note and "1.0 bootstrap sd" in note and "keeps 0%" in note


def test_the_report_is_silent_on_a_departure_that_was_not_measured():
    assert "bootstrap sd" not in _methods_note({"applied": False, "reason": "uncalibrated method"})


@pytest.mark.parametrize("ratio, said", [(0.62, True), (1.0, False), (None, False)])
def test_the_report_says_when_the_folds_narrowed_the_optimistic_side(ratio, said):
    note = _methods_note({"applied": False, "reason": "uncalibrated method"}, {"spread_ratio": ratio})
    assert ("missed by 62% of the spread" in note) == said
