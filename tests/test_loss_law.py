"""Loss law fit: recovers known a, b, c; residual bootstrap about the fitted curve; frontier; rolling backtests."""
import csv
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.forecast import loss_law
from pipeline.forecast.loss_law import (bootstrap_loss_law, fit_loss_law, frontier_mask, identifiability,
                                        rolling_backtests, scatter_pool)

X = np.logspace(-4, -1, 6)  # normalised compute: the target is at 1, 10x beyond the largest point
CHINCHILLA = Path(__file__).parents[2] / "shared" / "data" / "realdata" / "chinchilla_points.csv"


@pytest.mark.parametrize("a,b,c", [(1.2, -0.08, 1.7), (0.6, -0.2, 0.9), (2.0, -0.05, 0.5)])
def test_fit_recovers_known_parameters(a, b, c):
    fit = fit_loss_law(X, a * X ** b + c)
    assert (fit.a, fit.b, fit.c) == pytest.approx((a, b, c), rel=0.02)
    assert fit.a + fit.c == pytest.approx(a + c, rel=1e-3)


def test_fit_is_robust_to_one_outlier_through_huber():
    loss = 1.2 * X ** -0.08 + 1.7
    loss[2] *= 1.15
    fit = fit_loss_law(X, loss)
    assert fit.a + fit.c == pytest.approx(2.9, rel=0.03)


def _noisy(sigma=0.01, seed=0, x=X):
    return (1.2 * x ** -0.08 + 1.7) * np.exp(np.random.default_rng(seed).normal(0, sigma, size=len(x)))


def test_replicates_are_the_fitted_curve_times_resampled_residuals(monkeypatch):
    """Not the observed points times residuals: that flips the residual's sign and applies the scatter twice."""
    fit = fit_loss_law(X, _noisy())
    pool, seen, real_fit = scatter_pool(fit.residuals), [], loss_law.fit_loss_law
    monkeypatch.setattr(loss_law, "fit_loss_law", lambda x, y, **kw: seen.append(np.array(y)) or real_fit(x, y, **kw))
    bootstrap_loss_law(X, fit, 5, np.random.default_rng(1))
    for points in seen:
        deviations = np.log(points) - np.log(fit.predict(X))
        assert np.min(np.abs(deviations[:, None] - pool[None, :]), axis=1) == pytest.approx(0, abs=1e-12)


def test_pool_has_the_sign_of_observed_minus_fitted():
    fit = fit_loss_law(X, _noisy())
    deviation = np.log(_noisy()) - np.log(fit.predict(X))
    assert np.corrcoef(scatter_pool(fit.residuals), deviation)[0, 1] > 0.99


def test_a_new_point_is_its_curve_times_one_more_residual_draw():
    fit = fit_loss_law(X, _noisy(0.02))
    reps = bootstrap_loss_law(X, fit, 20, np.random.default_rng(2))
    own, pool = np.log(reps[:, 4] / reps[:, 3]), scatter_pool(fit.residuals)
    assert np.min(np.abs(own[:, None] - pool[None, :]), axis=1) == pytest.approx(0, abs=1e-12)
    assert np.std(own) > 0.5 * np.std(pool)


def _documents(a, b, c, docs=200, seed=0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(50, 400, size=docs).astype(float)
    difficulty = rng.lognormal(0, 0.2, size=docs)
    mean = (a * X ** b + c)[:, None] * difficulty[None, :] / difficulty.mean()
    sums = mean * tokens[None, :] * rng.normal(1, 0.01, size=(len(X), docs))
    return np.broadcast_to(tokens, sums.shape).copy(), sums


def test_document_bootstrap_brackets_the_estimate_and_is_narrow():
    tokens, sums = _documents(1.2, -0.08, 1.7)
    point = fit_loss_law(X, sums.sum(1) / tokens.sum(1))
    reps = bootstrap_loss_law(X, point, 30, np.random.default_rng(1), documents=(tokens, sums), scatter=False)
    lo, hi = np.percentile(reps[:, 3], [2.5, 97.5])
    assert lo <= point.a + point.c <= hi and hi - lo < 0.5


def test_exact_law_has_no_scatter_to_add():
    exact = 1.2 * X ** -0.08 + 1.7
    point = fit_loss_law(X, exact)
    reps = bootstrap_loss_law(X, point, 10, np.random.default_rng(1))
    assert np.ptp(reps[:, 4]) < 1e-3


def test_three_points_are_reported_as_exactly_determined():
    x = X[:3]
    fit = fit_loss_law(x, 1.0 * x ** -0.1 + 1.0)
    assert any("3 points" in note for note in identifiability(fit, None, 3, 0.9))


def test_poorly_determined_c_is_reported_with_its_trade_off_against_a():
    x = np.logspace(-4, -3.5, 6)  # half a decade, 3.5 decades short of the target
    fit = fit_loss_law(x, _noisy(0.01, 3, x))
    reps = bootstrap_loss_law(x, fit, 40, np.random.default_rng(4))
    notes = identifiability(fit, reps, len(x), 0.9)
    assert any("poorly determined" in note for note in notes)


def test_a_well_determined_c_gets_no_trade_off_note():
    x = np.logspace(-6, -1, 8)
    fit = fit_loss_law(x, _noisy(0.0005, 5, x))
    reps = bootstrap_loss_law(x, fit, 30, np.random.default_rng(4))
    assert abs(np.corrcoef(reps[:, 0], reps[:, 2])[0, 1]) > 0.8  # they correlate, as always ...
    assert not any("trades off" in note for note in identifiability(fit, reps, len(x), 0.9))  # ... but c is known


@pytest.mark.parametrize("compute,loss,expected", [
    ([1, 2, 3, 4], [4.0, 3.0, 2.0, 1.0], [1, 1, 1, 1]),
    ([1, 2, 3, 4], [4.0, 5.0, 3.0, 3.5], [1, 0, 1, 0]),
    ([1, 1, 2], [3.0, 2.0, 2.5], [1, 1, 0]),             # equal compute: neither has less than the other
    ([1, 2, 3], [3.0, 3.0, 2.0], [1, 0, 1]),             # a tie is not below
])
def test_frontier_keeps_runs_below_every_run_with_less_compute(compute, loss, expected):
    assert frontier_mask(compute, loss).astype(int).tolist() == expected


def test_frontier_rule_matches_the_chinchilla_tables_own_column():
    rows = list(csv.DictReader(open(CHINCHILLA)))
    mask = frontier_mask([float(r["C_flop"]) for r in rows], [float(r["loss"]) for r in rows])
    assert mask.tolist() == [r["pareto_frontier"] == "1" for r in rows] and mask.sum() == 68


def test_rolling_backtests_of_an_exact_law_have_no_error():
    x = np.logspace(-5, -1, 10)
    errors = rolling_backtests(x, 1.2 * x ** -0.08 + 1.7)
    assert errors and max(abs(e.log_error) for e in errors) < 1e-3


def test_rolling_backtests_see_a_bending_law():
    x = np.logspace(-5, -1, 10)
    bent = 1.2 * x ** -0.08 + 0.5 * x ** -0.3 + 1.0   # two power terms: no single a·x^b + c is exact
    errors = rolling_backtests(x, bent)
    assert max(abs(e.log_error) for e in errors) > 5e-3


def test_rolling_backtests_use_origins_that_saw_half_the_span():
    x = np.logspace(-5, -1, 12)
    errors = rolling_backtests(x, 1.2 * x ** -0.08 + 1.7)
    assert min(np.log10(e.cut / x[0]) for e in errors) >= 0.5 * 4 - 1e-9
    assert min(e.decades for e in errors) >= 0.25


@pytest.mark.parametrize("x,loss,message", [
    ([1e-3, 1e-2], [3.0, 2.5], "at least 3"),
    ([1e-3, 1e-2, 1e-1], [3.0, -1.0, 2.0], "positive"),
    ([1e-3, 1e-2, 1e-1], [3.0, np.nan, 2.0], "finite"),
    ([1e-3, 1e-2], [3.0, 2.5, 2.0], "equally long"),
])
def test_bad_fit_inputs_raise_user_error(x, loss, message):
    with pytest.raises(UserError, match=message):
        fit_loss_law(x, loss)
