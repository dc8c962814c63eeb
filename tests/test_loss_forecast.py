"""Loss forecast: which points enter the fit, the prediction interval, and the warnings beside it."""
import math

import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.forecast.loss_forecast import (LossFitSettings, forecast_loss, loss_forecast_json, misfit_allowance,
                                             select_fit)
from pipeline.forecast.loss_law import BacktestError

TARGET = 1e22


def _law(x):
    return 1.2 * x ** -0.08 + 1.7


def _rows(x, loss):
    return [{"checkpoint": f"m{i}", "compute": float(xi * TARGET), "mean_loss": float(li)}
            for i, (xi, li) in enumerate(zip(x, loss))]


def _forecast(x, loss, **settings):
    settings.setdefault("bootstrap", 30)
    return forecast_loss(np.asarray(x) * TARGET, np.asarray(loss), TARGET, LossFitSettings(**settings))


def _scattered(n=8, sigma=0.01, seed=0, lo=-4, hi=-1):
    x = np.logspace(lo, hi, n)
    return x, _law(x) * np.exp(np.random.default_rng(seed).normal(0, sigma, n))


def _cloud(seed=0):
    """Runs far from compute-optimal: many at each compute, most well above the frontier."""
    rng = np.random.default_rng(seed)
    x = np.repeat(np.logspace(-4, -1, 5), 6) * rng.uniform(0.9, 1.1, 30)
    return x, _law(x) * np.exp(np.abs(rng.normal(0, 0.12, 30)))


CASES = {
    "scattered": _scattered(),
    "four points": _scattered(4),
    "exact law": (np.logspace(-4, -1, 6), _law(np.logspace(-4, -1, 6))),
    "off-curve cloud": _cloud(),
    "one decade, far": _scattered(8, 0.004, 1, -4, -3),
}


@pytest.mark.parametrize("case", CASES)
def test_forecast_lies_inside_its_own_interval(case):
    out = _forecast(*CASES[case])
    pred = out["prediction"]
    if pred["interval"] is not None:
        assert pred["interval"][0] <= pred["value"] <= pred["interval"][1]


def test_prediction_interval_covers_the_targets_own_scatter():
    """The interval is for the target's loss, not only for the curve: with scatter s about the law, it is
    at least about ±1.6 s wide in log even when the curve itself is well determined."""
    x, loss = _scattered(12, 0.02, 3, -4, -1)
    out = _forecast(x, loss, bootstrap=60)
    lo, hi = out["prediction"]["interval"]
    curve = out["prediction"]["curve_interval"]
    assert math.log(hi / lo) > 2 * 1.3 * 0.02 and hi - lo > curve[1] - curve[0]


def test_misfit_allowance_widens_the_interval_for_a_bending_law():
    x = np.logspace(-5, -1, 10)
    bent = 1.2 * x ** -0.08 + 0.5 * x ** -0.3 + 1.0
    out = _forecast(x, bent, bootstrap=0)
    lo, hi = out["prediction"]["interval"]
    assert out["fit"]["calibration"]["per_decade"] > 0 and math.log(hi / lo) > 0.01


def test_three_points_and_nothing_to_resample_give_no_interval_and_say_why():
    x = np.logspace(-4, -1, 3)
    out = _forecast(x, _law(x) * [1.0, 1.01, 0.99])
    assert out["prediction"]["interval"] is None
    assert any("no interval" in w for w in out["fit"]["warnings"])


def test_a_nearly_exact_law_warns_that_the_interval_is_degenerate():
    x = np.logspace(-4, -1, 4)
    out = _forecast(x, _law(x) * (1 + np.array([1, -1, 1, -1]) * 1e-7))
    assert any("degenerate" in w or "no interval" in w for w in out["fit"]["warnings"])


def test_points_off_one_curve_get_a_warning():
    out = _forecast(*_cloud())
    assert any("do not lie on one L(C) curve" in w for w in out["fit"]["warnings"])


@pytest.mark.parametrize("case", ["scattered", "exact law"])
def test_points_on_one_curve_get_no_off_curve_warning(case):
    out = _forecast(*CASES[case])
    assert not any("one L(C) curve" in w for w in out["fit"]["warnings"])


def test_misfit_allowance_is_the_conformal_quantile_per_decade_times_distance():
    errors = [BacktestError(1e-3, 1e-2, 1.0, e) for e in (0.01, -0.02, 0.03, 0.04, -0.05, 0.06, 0.07, 0.08, 0.09)]
    out = misfit_allowance(errors, 0.8, 2.0)          # rank ceil(10 * 0.8) = 8 of 9
    assert out["per_decade"] == pytest.approx(0.08) and out["log_half_width"] == pytest.approx(0.16)


def test_selection_excludes_target_larger_runs_and_runs_past_the_limit():
    names = ["s", "m", "l", "xl", "target", "beyond"]
    compute = np.array([1e18, 1e19, 1e20, 1e21, 1e22, 1e23])
    used = select_fit(names, compute, np.ones(6), "target", 1e22, LossFitSettings(max_fit_compute_fraction=0.01))
    assert used.tolist() == [True, True, True, False, False, False]


def test_selection_on_the_frontier_drops_runs_above_a_smaller_one():
    names = [f"r{i}" for i in range(5)]
    used = select_fit(names, np.array([1, 2, 3, 4, 5.0]), np.array([3.0, 3.5, 2.5, 2.0, 1.0]), "r4", 5.0,
                      LossFitSettings(frontier=True))
    assert used.tolist() == [True, False, True, True, False]


def test_too_few_points_name_the_usable_ones():
    with pytest.raises(UserError, match="usable: small, mid"):
        select_fit(["small", "mid", "big"], np.array([1, 2, 3.0]), np.ones(3), "big", 3.0, LossFitSettings())


def test_json_marks_points_and_carries_the_actual():
    x, loss = _scattered(6)
    rows = _rows(np.append(x, 1.0), np.append(loss, 1.75))
    rows[-1]["checkpoint"] = "target"
    out = loss_forecast_json(rows, "target", TARGET, LossFitSettings(bootstrap=10))
    assert [p["used_in_fit"] for p in out["points"]] == [True] * 6 + [False]
    assert out["actual"] == {"value": 1.75} and set(out["prediction"]) >= {"value", "interval", "level"}
    assert out["fit"]["checkpoints"] == [f"m{i}" for i in range(6)]


@pytest.mark.slow
def test_prediction_intervals_cover_new_points_on_a_noisy_exact_law():
    hits = 0
    for seed in range(32):
        x, loss = _scattered(8, 0.01, 100 + seed)
        out = _forecast(x, loss, bootstrap=60, seed=seed)
        truth = _law(1.0) * math.exp(np.random.default_rng(seed).normal(0, 0.01))
        lo, hi = out["prediction"]["interval"]
        hits += lo <= truth <= hi
    assert 0.8 <= hits / 32 <= 1.0
