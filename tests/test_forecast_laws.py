"""Laws of different shapes, their stacking, shared shocks, exact posterior draws, calibration by rolling backtests."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.forecast.fit import FitOptions, prepare, run_method
from pipeline.forecast.laws import SPREAD_MIN, UNREVEALED_PER_EFOLD, _widening, evidence_weights, spread_ratio
from pipeline.forecast.posterior import checkpoint_shocks, posterior_draws, shock_offsets
from pipeline.forecast.problem_laws import V_PRIOR_SD, _loglik, exponent_pool, fit_hierarchical, fit_problem_laws
from simulated.scenarios import draw_scenario, scenario_study
from simulated.family import FamilySpec, sample_counts, simulate_family

OPTIONS = FitOptions(bootstrap=200, alternatives=False)


def _stacked(family, n):
    counts = sample_counts(family, n, np.random.default_rng(1), include_target=False)
    data = prepare(counts, None, family.target_compute, OPTIONS)
    fit = run_method("stacked", data.table, data.restriction.models, data.restriction.problems, data.target_compute,
                     OPTIONS)
    return fit, family.true_mean_log_pass_rate(data.restriction.problems)


@pytest.mark.parametrize("scenario, winner", [("emergence", "sigmoid"), ("power", "power")])
def test_the_true_law_gets_most_of_the_weight(scenario, winner):
    family, n = draw_scenario(scenario, np.random.default_rng(3))
    fit, _ = _stacked(family, n)
    assert fit.details["weights"][winner] > 0.8


def test_evidence_weights_prefer_the_law_with_higher_held_out_density():
    lpd = np.array([[-1.0, -1.2, -0.9, -1.1], [-3.0, -2.5, -2.8, -3.1]])
    w = evidence_weights(lpd)
    assert w.sum() == pytest.approx(1.0) and w[0] > 0.99


def test_evidence_weights_leave_a_tie_to_the_reference_law():
    lpd = np.array([[-1.0, -2.0], [-2.0, -1.0]])
    assert evidence_weights(lpd)[0] > 0.9


def test_evidence_weights_ignore_a_lead_within_its_noise():
    rng = np.random.default_rng(0)
    diff = rng.normal(0.0, 0.3, size=128)
    lpd = np.stack([np.full(128, -2.0), -2.0 + diff - diff.mean() + 2.0 / 128])   # other law leads by 2 nats
    assert evidence_weights(lpd)[0] > 0.9


def test_evidence_weights_give_a_lead_beyond_its_noise_the_weight():
    rng = np.random.default_rng(0)
    diff = rng.normal(0.0, 0.3, size=128)
    lpd = np.stack([np.full(128, -2.0), -2.0 + diff - diff.mean() + 30.0 / 128])  # leads by 30 nats, se 3.4
    assert evidence_weights(lpd)[1] > 0.99


def test_evidence_weights_with_no_held_out_points_weight_laws_equally():
    assert evidence_weights(np.zeros((2, 0))) == pytest.approx([0.5, 0.5])


def test_on_the_emergence_family_the_stacked_forecast_is_close_and_covered():
    family, n = draw_scenario("emergence", np.random.default_rng(5))
    fit, truth = _stacked(family, n)
    assert abs(fit.prediction / truth - 1) < 0.15 and fit.interval[0] <= truth <= fit.interval[1]


def _shocked_counts(shock_sd: float, seed: int = 2):
    family = simulate_family(FamilySpec(n_problems=150, n_checkpoints=8, noise_sd=0.0, non_monotone_fraction=0.0),
                             seed=seed)
    rng = np.random.default_rng(seed)
    lam = -np.log(family.pass_rates) * np.exp(rng.normal(0.0, shock_sd, size=(len(family.compute), 1)))
    n = np.full(lam.shape, 200.0)
    return np.log(family.normalized_compute), n, rng.binomial(200, np.exp(-lam)).astype(float)


@pytest.mark.parametrize("shock_sd, low, high", [(0.0, 0.0, 0.03), (0.2, 0.08, 0.4)])
def test_shared_shock_is_estimated(shock_sd, low, high):
    x, n, c = _shocked_counts(shock_sd)
    keep = np.all(c >= 1, axis=0)
    laws = fit_hierarchical(x, n[:, keep], c[:, keep])
    assert low <= checkpoint_shocks(laws, x, n[:, keep], c[:, keep])[0] <= high


def test_importance_draws_match_the_exact_posterior_of_a_problem_solved_every_time():
    x = np.log(np.array([1e-3, 3e-3, 1e-2, 3e-2]))
    n = np.full((4, 1), 20.0)
    c = n.copy()
    laws = fit_problem_laws(x, n, c, k_prior=0.3, tau=0.2)
    draws = posterior_draws(laws, x, n, c, 4000, np.random.default_rng(0))
    lam_draws = np.exp(draws.v[:, 0] + draws.k[:, 0] * laws.x_bar)       # -log p at x = 0
    v, k = np.meshgrid(np.linspace(-25, 5, 600), np.linspace(-1.0, 1.6, 300), indexing="ij")
    eta = v[..., None] - k[..., None] * (x - laws.x_bar)
    log_post = (_loglik(eta, 20.0, 20.0, False).sum(-1) - 0.5 * ((v - laws.v_prior[0]) / V_PRIOR_SD) ** 2
                - 0.5 * ((k - 0.3) / 0.2) ** 2)
    w = np.exp(log_post - log_post.max())
    exact = np.sum(w * np.exp(v + k * laws.x_bar)) / w.sum()
    assert np.mean(lam_draws) == pytest.approx(exact, rel=0.15)
    assert exact < 0.05   # a pass rate above 95%: not the 34% a Gaussian pushed through exp gave


def test_on_an_exact_power_law_family_the_folds_narrow_the_optimistic_side():
    family, n = draw_scenario("power", np.random.default_rng(4))   # ratios vary by family (0.5-1 on seeds 0-5)
    fit, truth = _stacked(family, n)
    assert SPREAD_MIN <= fit.details["rolling"]["spread_ratio"] < 0.9
    assert fit.interval[0] <= truth <= fit.interval[1]


def _improving_draws(x: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, float]:
    lam = 0.5 * np.exp(-0.3 * (grid - x[0]))                              # -log p falling with compute
    spread = np.exp(0.05 * np.random.default_rng(1).standard_normal((400, 1, 1)))   # draws differ a little
    return -lam * spread * np.ones((400, 3, 1)), float(0.5 * np.exp(-0.3 * (x[-1] - x[0])))


def test_a_huge_miss_rate_never_makes_the_target_worse_than_the_largest_fit_checkpoint():
    x = np.log(np.array([1e-3, 3e-3, 1e-2]))
    grid = np.linspace(x[0], 0.0, 25)
    log_p, lam_top = _improving_draws(x, grid)
    scale = _widening(x, grid, log_p, rate=5.0, folds=1, shock_sd=0.0, rng=np.random.default_rng(0))
    improvement = lam_top / (0.5 * np.exp(-0.3 * (grid[-1] - x[0])))          # each draw's own law, top -> target
    assert np.all(scale[:, -1] <= improvement * (1 + 1e-9))
    assert scale[:, -1].max() == pytest.approx(improvement)                     # the cap binds, no further
    assert scale[:, -1].min() < 0.1                                             # the optimistic side stays wide


def test_the_cap_is_the_measured_value_at_the_largest_checkpoint_when_that_is_worse():
    x = np.log(np.array([1e-3, 3e-3, 1e-2]))
    grid = np.linspace(x[0], 0.0, 25)
    log_p, lam_top = _improving_draws(x, grid)
    scale = _widening(x, grid, log_p, 5.0, 1, 0.0, np.random.default_rng(0), measured_top=-2 * lam_top)
    assert np.max(-log_p[:, 0, -1] * scale[:, -1]) > 1.9 * lam_top


def test_unrevealed_misspecification_widens_only_the_pessimistic_side():
    x = np.log(np.array([1e-3, 3e-3, 1e-2]))
    grid = np.linspace(x[0], 0.0, 25)
    log_p, _ = _improving_draws(x, grid)
    scale = _widening(x, grid, log_p, rate=0.0, folds=3, shock_sd=0.0, rng=np.random.default_rng(0))[:, -1]
    lam = -log_p[:, 0, -1]
    better = lam < np.median(lam)
    assert np.all(scale[better] == 1.0)                                    # the optimistic half is untouched
    assert scale.max() == pytest.approx(np.exp(UNREVEALED_PER_EFOLD * -x[-1]), rel=0.01)


def test_a_spread_ratio_below_one_pulls_only_the_better_half_towards_the_median():
    x = np.log(np.array([1e-3, 3e-3, 1e-2]))
    grid = np.linspace(x[0], 0.0, 25)
    log_p, _ = _improving_draws(x, grid)
    scale = _widening(x, grid, log_p, 0.0, 3, 0.0, np.random.default_rng(0), spread=0.6)[:, 0]   # d = 0: no kappa
    log_lam = np.log(-log_p[:, 0, 0])
    med = np.median(log_lam)
    worse = log_lam >= med
    assert np.all(scale[worse] == 1.0)
    np.testing.assert_allclose(log_lam[~worse] + np.log(scale[~worse]), med + 0.6 * (log_lam[~worse] - med))


@pytest.mark.parametrize("seen, spread, expected", [
    ([], [], 1.0),                                       # no fold: the draws' spread stands
    ([0.04, 0.09], [0.01, 0.01], 1.0),                   # misses wider than the draws: never widened here
    ([0.0] * 10, [0.01] * 10, SPREAD_MIN),               # no miss at all in ten rows: at most halved
    ([0.0], [0.01], np.sqrt(2 / 3)),                     # one row cannot say much: the prior's two rows at r = s
    ([0.0025] * 4, [0.01] * 4, np.sqrt((0.01 + 0.02) / (0.04 + 0.02))),
])
def test_the_spread_ratio_of_the_folds(seen, spread, expected):
    assert spread_ratio(np.array(seen), np.array(spread)) == pytest.approx(expected)


def test_a_bend_shared_by_all_problems_is_not_taken_for_a_shock():
    family = simulate_family(FamilySpec(n_problems=150, n_checkpoints=8, noise_sd=0.0, non_monotone_fraction=0.0),
                             seed=4)
    x = np.log(family.normalized_compute)
    lam = -np.log(family.pass_rates) * np.exp(0.05 * (x[:, None] - x.mean()) ** 2)   # smooth, not a shock
    n = np.full(lam.shape, 200.0)
    c = np.random.default_rng(4).binomial(200, np.exp(-lam)).astype(float)
    keep = np.all(c >= 1, axis=0)
    laws = fit_hierarchical(x, n[:, keep], c[:, keep])
    assert checkpoint_shocks(laws, x, n[:, keep], c[:, keep])[0] < 0.03


def _offsets_and_true_shocks(shock_sd: float) -> tuple[np.ndarray, np.ndarray]:
    family = simulate_family(FamilySpec(n_problems=150, n_checkpoints=8, noise_sd=0.0, non_monotone_fraction=0.0),
                             seed=2)
    rng = np.random.default_rng(2)
    shocks = rng.normal(0.0, shock_sd, size=len(family.compute))
    lam = -np.log(family.pass_rates) * np.exp(shocks[:, None])
    n = np.full(lam.shape, 200.0)
    c = rng.binomial(200, np.exp(-lam)).astype(float)
    x = np.log(family.normalized_compute)
    keep = np.all(c >= 1, axis=0)
    laws = fit_hierarchical(x, n[:, keep], c[:, keep])
    design = np.stack([np.ones_like(x), x, x * x], axis=1)
    rough = shocks - design @ np.linalg.lstsq(design, shocks, rcond=None)[0]   # what a refit can take out
    return shock_offsets(laws, x, n[:, keep], c[:, keep])[1], rough


def test_shock_offsets_follow_the_shocks():
    offsets, rough = _offsets_and_true_shocks(0.2)
    assert np.corrcoef(offsets, rough)[0, 1] > 0.8


def test_shock_offsets_vanish_without_shocks():
    offsets, _ = _offsets_and_true_shocks(0.0)
    assert np.all(np.abs(offsets) < 0.02)


def test_a_difficulty_slope_the_data_cannot_tell_from_zero_is_left_out_of_the_pool():
    rng = np.random.default_rng(5)
    b, cov, _ = exponent_pool(rng.standard_normal(200), 0.3 + 0.05 * rng.standard_normal(200), np.full(200, 0.05**2))
    assert len(b) == 1 and cov.shape == (1, 1)


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["emergence", "curvature", "floors", "shocks", "worse"])
def test_misspecified_families_are_covered_about_as_often_as_claimed(scenario):
    rows = [r for r in scenario_study(scenario, 16, ("stacked",), seed=11, draws=200) if r["error"] is None]
    assert np.mean([r["covered"] for r in rows]) >= 0.75
    assert np.median([abs(r["relative_error"]) for r in rows]) <= 0.12
