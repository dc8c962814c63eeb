"""The simulator: reproducible families whose truth is what the spec says, binomial counts around it."""
from __future__ import annotations

import numpy as np
import pytest

from simulated.family import (TARGET_NAME, FamilySpec, draw_passes, sample_counts, simulate_family)


def test_same_seed_gives_same_family():
    a, b = simulate_family(FamilySpec(), seed=3), simulate_family(FamilySpec(), seed=3)
    assert np.array_equal(a.pass_rates, b.pass_rates) and np.array_equal(a.k, b.k)


def test_compute_spans_the_spec_and_target_is_beyond():
    f = simulate_family(FamilySpec(n_checkpoints=7, compute_span=100, target_factor=30), seed=0)
    assert f.compute[-1] / f.compute[0] == pytest.approx(100)
    assert f.target_compute / f.compute[-1] == pytest.approx(30)
    assert np.all(np.diff(f.compute) > 0)


def test_exponents_within_spread_except_falling_problems():
    spec = FamilySpec(k=0.3, k_spread=0.15, non_monotone_fraction=0.05)
    f = simulate_family(spec, seed=1)
    rising = [i for i, t in enumerate(f.task_ids) if t not in f.non_monotone]
    assert np.all((f.k[rising] >= 0.15) & (f.k[rising] <= 0.45))
    assert len(f.non_monotone) == round(0.05 * spec.n_problems)


def test_falling_problems_lose_pass_rate_with_scale():
    f = simulate_family(FamilySpec(noise_sd=0.0, non_monotone_fraction=0.1), seed=2)
    idx = f._index(f.non_monotone)
    assert np.all(f.pass_rates[-1, idx] < f.pass_rates[0, idx])


def test_noiseless_truth_follows_each_problems_law():
    f = simulate_family(FamilySpec(noise_sd=0.0), seed=4)
    lam = f.alpha[None, :] * f.normalized_compute[:, None] ** (-f.k[None, :])
    assert np.allclose(-np.log(f.pass_rates), lam)
    assert f.true_mean_log_pass_rate() == pytest.approx(-np.mean(f.alpha))


def test_counts_are_unbiased_for_pass_rates():
    f = simulate_family(FamilySpec(n_problems=20, n_checkpoints=3), seed=5)
    rng = np.random.default_rng(0)
    total = np.zeros_like(f.pass_rates)
    reps = 400
    for _ in range(reps):
        rows = sample_counts(f, 50, rng, include_target=False)
        total += np.array([r.passed / r.n for r in rows]).reshape(f.pass_rates.shape)
    se = np.sqrt(f.pass_rates * (1 - f.pass_rates) / (50 * reps)) + 1e-9
    assert np.all(np.abs(total / reps - f.pass_rates) <= 5 * se)


def test_sample_counts_include_target_rows():
    f = simulate_family(FamilySpec(n_problems=5, n_checkpoints=3), seed=6)
    rows = sample_counts(f, 10, np.random.default_rng(0), target_n=40)
    target = [r for r in rows if r.checkpoint == TARGET_NAME]
    assert len(rows) == 20 and len(target) == 5 and all(r.n == 40 for r in target)
    assert all(r.compute == f.target_compute for r in target)


def test_per_cell_budget_matrix():
    f = simulate_family(FamilySpec(n_problems=4, n_checkpoints=2), seed=7)
    n = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    rows = sample_counts(f, n, np.random.default_rng(0), include_target=False)
    assert [r.n for r in rows] == list(n.ravel())


def test_draw_passes_matches_the_cell_pass_rate():
    f = simulate_family(FamilySpec(n_problems=3, n_checkpoints=2), seed=8)
    draws = draw_passes(f, 1, 2, 40000, np.random.default_rng(0))
    assert abs(draws.mean() - f.pass_rates[1, 2]) < 5 * np.sqrt(0.25 / 40000)
    assert abs(draw_passes(f, -1, 0, 40000, np.random.default_rng(1)).mean() - f.target_pass_rates[0]) < 0.013


@pytest.mark.parametrize("field,value", [("n_checkpoints", 1), ("compute_span", 1.0), ("target_factor", 0.5),
                                         ("difficulty_at", "middle")])
def test_bad_spec_is_refused(field, value):
    with pytest.raises(ValueError):
        simulate_family(FamilySpec(**{field: value}), seed=0)


def test_difficulty_at_target_sets_the_spread_at_c_equals_one():
    spec = FamilySpec(difficulty_at="target", noise_sd=0.0, non_monotone_fraction=0.0, difficulty_sd=0.0)
    f = simulate_family(spec, seed=0)
    assert np.allclose(f.alpha, f.alpha[0])          # same -log p at the target, different exponents
    assert np.ptp(f.k) > 0.1
