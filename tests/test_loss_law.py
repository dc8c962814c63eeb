"""Loss law fit: recovers known a, b, c; bootstrap over documents; says when c is not identified."""
import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.forecast.loss_law import bootstrap_loss_law, fit_loss_law, identifiability

X = np.logspace(-4, -1, 6)  # normalised compute: the target is at 1, 10x beyond the largest point


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


def _documents(a, b, c, docs=200, seed=0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(50, 400, size=docs).astype(float)
    difficulty = rng.lognormal(0, 0.2, size=docs)
    mean = (a * X ** b + c)[:, None] * difficulty[None, :] / difficulty.mean()
    sums = mean * tokens[None, :] * rng.normal(1, 0.01, size=(len(X), docs))
    return np.broadcast_to(tokens, sums.shape).copy(), sums


def test_bootstrap_interval_brackets_the_estimate_and_is_narrow():
    tokens, sums = _documents(1.2, -0.08, 1.7)
    point = fit_loss_law(X, sums.sum(1) / tokens.sum(1))
    reps = bootstrap_loss_law(X, tokens, sums, 30, np.random.default_rng(1), init=(point.a, point.b, point.c))
    lo, hi = np.percentile(reps[:, 3], [2.5, 97.5])
    assert lo <= point.a + point.c <= hi and hi - lo < 0.5


def test_checkpoint_scatter_widens_the_interval():
    tokens, sums = _documents(1.2, -0.08, 1.7)
    scatter = np.exp(np.random.default_rng(4).normal(0, 0.01, size=len(X)))
    sums = sums * scatter[:, None]
    point = fit_loss_law(X, sums.sum(1) / tokens.sum(1))
    init = (point.a, point.b, point.c)
    docs_only = bootstrap_loss_law(X, tokens, sums, 40, np.random.default_rng(1), init=init)
    both = bootstrap_loss_law(X, tokens, sums, 40, np.random.default_rng(1), init=init, residuals=point.residuals)
    width = [np.subtract(*np.percentile(r[:, 3], [95, 5])) for r in (docs_only, both)]
    assert width[1] > 1.5 * width[0]


def test_exact_law_has_no_scatter_to_add():
    tokens, sums = _documents(1.2, -0.08, 1.7)
    exact = (1.2 * X ** -0.08 + 1.7)[:, None] * tokens
    point = fit_loss_law(X, exact.sum(1) / tokens.sum(1))
    reps = bootstrap_loss_law(X, tokens, exact, 10, np.random.default_rng(1), init=(point.a, point.b, point.c),
                              residuals=point.residuals)
    assert np.ptp(reps[:, 3]) < 1e-3


def test_three_points_are_reported_as_exactly_determined():
    x = X[:3]
    fit = fit_loss_law(x, 1.0 * x ** -0.1 + 1.0)
    assert any("3 points" in note for note in identifiability(fit, None, 3, 0.9))


def test_trade_off_between_a_and_c_is_reported():
    rng = np.random.default_rng(2)
    tokens, sums = _documents(1.0, -0.03, 1.0, docs=60, seed=3)
    sums *= rng.normal(1, 0.05, size=sums.shape)
    fit = fit_loss_law(X, sums.sum(1) / tokens.sum(1))
    reps = bootstrap_loss_law(X, tokens, sums, 40, np.random.default_rng(4), init=(fit.a, fit.b, fit.c))
    notes = identifiability(fit, reps, len(X), 0.9)
    assert any("c" in note and ("trades off" in note or "poorly determined" in note or "bound 0" in note)
               for note in notes)


@pytest.mark.parametrize("x,loss,message", [
    ([1e-3, 1e-2], [3.0, 2.5], "at least 3"),
    ([1e-3, 1e-2, 1e-1], [3.0, -1.0, 2.0], "positive"),
    ([1e-3, 1e-2, 1e-1], [3.0, np.nan, 2.0], "finite"),
    ([1e-3, 1e-2], [3.0, 2.5, 2.0], "equally long"),
])
def test_bad_fit_inputs_raise_user_error(x, loss, message):
    with pytest.raises(UserError, match=message):
        fit_loss_law(x, loss)
