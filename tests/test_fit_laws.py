"""Per-problem laws (pipeline.forecast.problem_laws): recovery, the selection-conditioned likelihood, pooling, dispersion."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.forecast.problem_laws import (_log1m_exp_neg, _loglik, exponent_pool, falling_problems, fit_hierarchical,
                                   fit_problem_laws, pearson_dispersion)

X = np.log(np.logspace(-4, -2, 7))


def _draw(v, k, n, rng, x=X):
    lam = np.exp(v[None, :] - k[None, :] * (x[:, None] - x.mean()))
    return np.full(lam.shape, float(n)), rng.binomial(n, np.exp(-lam)).astype(float)


def test_free_fit_recovers_each_problems_law():
    rng = np.random.default_rng(0)
    v, k = rng.uniform(-1, 1, 30), rng.uniform(0.1, 0.5, 30)
    n, c = _draw(v, k, 20000, rng)
    laws = fit_problem_laws(X, n, c, k_prior=0.3, tau=10.0)
    assert np.all(np.abs(laws.k - k) < 4 * laws.k_se() + 1e-3)
    assert np.all(np.abs(laws.v - v - laws.k * 0) < 0.05 + 4 * np.sqrt(laws.cov[:, 0, 0]))


def test_gradient_of_the_selection_conditioned_likelihood():
    eta = np.linspace(-6, 4, 25)[:, None]
    n, c = np.full_like(eta, 50.0), np.full_like(eta, 2.0)
    h = 1e-6
    numeric = (_loglik(eta + h, n, c, True) - _loglik(eta - h, n, c, True)) / (2 * h)
    lam = np.exp(eta)
    log_q = _log1m_exp_neg(lam)
    analytic = lam * (-c + (n - c) / np.expm1(lam)) + n * lam * np.exp(
        (n - 1) * log_q - lam - _log1m_exp_neg(-n * log_q))
    assert np.allclose(numeric, analytic, rtol=1e-5, atol=1e-6)


def test_conditioning_on_selection_removes_the_bias_of_kept_hard_problems():
    rng = np.random.default_rng(1)
    m = 3000
    v, k = np.full(m, 1.0), np.full(m, 0.3)       # hard: p ~ 0.005 at the smallest checkpoint, ~11% kept
    n, c = _draw(v, k, 60, rng)
    kept = (c >= 1).all(axis=0)
    naive = fit_problem_laws(X, n[:, kept], c[:, kept], k_prior=0.3, tau=10.0)
    conditioned = fit_problem_laws(X, n[:, kept], c[:, kept], k_prior=0.3, tau=10.0, truncated=True)
    assert np.mean(naive.k) < 0.27                     # selection makes the small checkpoints look easier
    assert abs(np.mean(conditioned.k) - 0.3) < abs(np.mean(naive.k) - 0.3) / 2


def test_pooling_estimates_the_exponent_spread():
    rng = np.random.default_rng(2)
    k = 0.3 + 0.1 * rng.standard_normal(400)
    b, cov, tau = exponent_pool(rng.standard_normal(400), k + 0.02 * rng.standard_normal(400), np.full(400, 0.02**2))
    assert tau == pytest.approx(0.1, rel=0.15) and b[0] == pytest.approx(0.3, abs=0.02)


def test_pooled_prior_follows_a_difficulty_trend():
    rng = np.random.default_rng(3)
    v = rng.standard_normal(400)
    b, _, _ = exponent_pool(v, 0.3 - 0.05 * (v - v.mean()), np.full(400, 0.01**2))
    assert b[1] == pytest.approx(-0.05, abs=0.005)


def test_hierarchical_fit_is_finite_for_always_solved_and_single_problems():
    n = np.full((5, 3), 20.0)
    c = np.array([[20, 1, 5]] * 5, dtype=float)
    laws = fit_hierarchical(X[:5], n, c, truncated=True)
    assert np.isfinite(laws.v).all() and np.isfinite(laws.cov).all()
    one = fit_hierarchical(X[:5], n[:, :1], c[:, 1:2])
    assert np.isfinite(one.k).all()


def test_dispersion_is_one_for_binomial_and_larger_with_cell_noise():
    rng = np.random.default_rng(4)
    v, k = rng.uniform(-1, 0.5, 100), np.full(100, 0.3)
    n, c = _draw(v, k, 400, rng)
    assert pearson_dispersion(fit_problem_laws(X, n, c, 0.3, 1.0), X, n, c) < 1.15
    lam = np.exp(v[None, :] - k[None, :] * (X[:, None] - X.mean())) * np.exp(0.3 * rng.standard_normal((7, 100)))
    noisy = rng.binomial(400, np.exp(-lam)).astype(float)
    assert pearson_dispersion(fit_problem_laws(X, n, noisy, 0.3, 1.0), X, n, noisy) > 2


def test_falling_problems_are_flagged_and_rising_ones_are_not():
    rng = np.random.default_rng(5)
    k = np.array([0.3] * 40 + [-0.3] * 5)
    n, c = _draw(np.zeros(45), k, 300, rng)
    flagged = set(falling_problems(X, n, c).tolist())
    assert flagged == set(range(40, 45))
