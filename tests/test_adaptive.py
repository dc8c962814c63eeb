"""Adaptive sampling: allocation, rounds, the recorded design, and unbiasedness of the whole design."""
import numpy as np
import pytest

from pipeline.sampling import adaptive as ad
from pipeline.errors import UserError
from pipeline.sampling.passuntil import COMPLETE, estimate_cell
from pipeline.records import PassCount


def test_allocation_spends_at_most_the_budget_and_respects_bounds():
    p = np.array([0.5, 0.2, 0.05, 0.01])
    r = ad.allocate_r(p, np.ones(4), samples=600, r_max=20, budget=1000)
    assert np.all(r >= 1) and np.all(r <= 20)
    assert np.minimum(r / p, 1000).sum() <= 600


def test_allocation_gives_more_successes_where_weight_is_higher():
    p = np.full(2, 0.3)
    r = ad.allocate_r(p, np.array([1.0, 25.0]), samples=300, r_max=50, budget=1000)
    assert r[1] > r[0]


def test_allocation_keeps_one_success_when_the_budget_is_too_small():
    r = ad.allocate_r(np.array([0.01, 0.01]), np.ones(2), samples=5, r_max=10, budget=1000)
    assert list(r) == [1, 1]


def test_extrapolation_leverage_is_highest_at_the_ends():
    w = ad.leverage_weights(np.logspace(20, 22, 5), np.ones(5), 1e24)
    assert w[-1] > w[2] and w[0] > w[2]


def test_no_target_compute_means_equal_weights():
    assert list(ad.leverage_weights(np.array([1.0, 2.0]), np.ones(2), None)) == [1.0, 1.0]


def _counts(n, passed):
    return [PassCount(f"m{j}", 10.0 ** (20 + j), f"t{i}", int(n[j][i]), int(passed[j][i]))
            for j in range(len(n)) for i in range(len(n[0]))]


def test_pilot_round_then_allocation_then_rounds():
    design = ad.Design(pilot=4, samples_per_cell=30, target_compute=1e24)
    plan = ad.plan_next_round(_counts([[0, 0]] * 3, [[0, 0]] * 3), design)
    assert not plan.done and {r["n_total"] for r in plan.requests} == {4} and not design.cells
    plan = ad.plan_next_round(_counts([[4, 4]] * 3, [[1, 0]] * 3), design)
    assert len(design.cells) == 6 and all(c.start == 4 for c in design.cells.values())
    assert all(r["n_total"] > 4 for r in plan.requests)


def test_cells_that_met_their_rule_ask_for_nothing():
    design = ad.Design(pilot=0, r=2)
    plan = ad.plan_next_round(_counts([[5, 3]], [[2, 0]]), design)
    assert [r["task_id"] for r in plan.requests] == ["t1"]
    assert ad.plan_next_round(_counts([[5, 9]], [[2, 2]]), design).done


def test_budget_stops_a_cell_without_successes():
    design = ad.Design(pilot=0, r=1, budget=8)
    plan = ad.plan_next_round(_counts([[3]], [[0]]), design)
    assert plan.requests[0]["n_total"] <= 8
    assert ad.plan_next_round(_counts([[8]], [[0]]), design).done


def test_recorded_design_survives_json_round_trip():
    design = ad.Design(pilot=2)
    ad.plan_next_round(_counts([[2, 2]] * 3, [[1, 0]] * 3), design)
    again = ad.Design.from_json(design.to_json())
    assert again.cells == design.cells and again.pilot == 2


def test_new_cells_after_allocation_get_a_data_independent_rule():
    design = ad.Design(pilot=2, r=3)
    ad.plan_next_round(_counts([[2]] * 3, [[1]] * 3), design)
    plan = ad.plan_next_round(_counts([[2, 5]] * 3, [[1, 1]] * 3), design)
    assert design.cells[("m0", "t1")] == ad.CellDesign(0, 0, 3, design.budget)
    assert any("new since allocation" in note for note in plan.notes)


def _simulate_design(p: np.ndarray, design: ad.Design, rng) -> np.ndarray:
    """Run pilot, allocation and rounds on Bernoulli draws; return each cell's estimate [ckpt, problem]."""
    m, k = p.shape
    seq = rng.random((m * k, design.pilot + design.budget + design.round_size)) < p.reshape(-1, 1)
    cum = np.concatenate([np.zeros((m * k, 1), int), np.cumsum(seq, axis=1)], axis=1)
    n = np.full(m * k, design.pilot)
    counts = [PassCount(f"m{j}", 10.0 ** (20 + j), f"t{i}", design.pilot, int(cum[j * k + i, design.pilot]))
              for j in range(m) for i in range(k)]
    d = ad.Design(**{**design.__dict__, "cells": {}})
    d.cells = ad.allocate(counts, d)
    rules = [d.cells[(f"m{j}", f"t{i}")] for j in range(m) for i in range(k)]
    start, sp, r, b = (np.array([getattr(x, a) for x in rules]) for a in ("start", "start_passed", "r", "budget"))
    while True:
        total = ad.next_totals(n, cum[np.arange(m * k), n], start, sp, r, b, d.round_size)
        if np.all(total == n):
            break
        n = total
    cells = [estimate_cell("m", "t", seq[c, :n[c]], int(r[c]), int(b[c]), int(start[c])) for c in range(m * k)]
    assert all(c.status == COMPLETE for c in cells)
    return np.array([c.log_p for c in cells]).reshape(m, k)


@pytest.mark.slow   # 3,000 simulated designs (15-25 s here); CI runs it
def test_the_whole_adaptive_design_is_unbiased_by_simulation():
    p = np.array([[0.05, 0.3], [0.15, 0.6], [0.4, 0.8]])
    design = ad.Design(pilot=5, samples_per_cell=40, round_size=7, target_compute=1e24)
    rng = np.random.default_rng(3)
    est = np.array([_simulate_design(p, design, rng) for _ in range(3000)])
    se = est.std(axis=0) / np.sqrt(len(est))
    assert np.all(np.abs(est.mean(axis=0) - np.log(p)) < 4 * se)


def test_round_sizes_do_not_change_estimates():
    seq = np.random.default_rng(5).random(400) < 0.1
    a = estimate_cell("m", "t", seq[:60], r=3, budget=300, start=5)
    b = estimate_cell("m", "t", seq[:400], r=3, budget=300, start=5)
    assert a.status == COMPLETE and (a.log_p, a.draws) == (b.log_p, b.draws)


@pytest.mark.parametrize("fields,message", [({"r": 0}, "'r'"), ({"budget": -1}, "'budget'"),
                                            ({"pilot": -2}, "'pilot'"), ({"samples_per_cell": 0}, "samples_per_cell"),
                                            ({"r": 5, "budget": 3, "pilot": 0}, "'budget'")])
def test_bad_design_fields_are_named(fields, message):
    with pytest.raises(UserError, match=message):
        ad.Design(**fields)


@pytest.mark.parametrize("obj,message", [({"kind": "other"}, "design.kind"),
                                         ({"kind": ad.DESIGN_KIND, "colour": 1}, "colour"),
                                         ({"kind": ad.DESIGN_KIND, "cells": [{"checkpoint": "m"}]}, "cells\\[0\\]")])
def test_bad_design_json_is_named(obj, message):
    with pytest.raises(UserError, match=message):
        ad.Design.from_json(obj, "plan.json")


def test_nothing_to_plan_is_an_error():
    with pytest.raises(UserError, match="nothing to plan"):
        ad.plan_next_round([], ad.Design())


def test_forecast_from_means_recovers_a_power_law():
    compute = np.logspace(18, 20, 5)
    mean = -2.0 * (compute / 1e22) ** -0.3
    assert ad.forecast_from_means(compute, mean, 1e22) == pytest.approx(-2.0)
    with pytest.raises(UserError):
        ad.forecast_from_means(compute, -mean, 1e22)


def test_logit_normal_posterior_tracks_pass_rates_better_than_jeffreys():
    """Pooling a checkpoint's pilot counts: E[1-p] per cell closer to the truth than 1 - Jeffreys p_hat."""
    rng = np.random.default_rng(11)
    p = 1 / (1 + np.exp(-rng.normal(0.5, 1.5, size=2000)))
    n = np.full(2000, 5)
    passed = rng.binomial(5, p)
    inverse, miss = ad.posterior_moments(n, passed, np.zeros(2000, int), budget=2000)
    jeffreys = (passed + 0.5) / (n + 1.0)
    assert np.mean((miss - (1 - p)) ** 2) < 0.9 * np.mean((jeffreys - p) ** 2)
    assert np.all(inverse >= 1) and np.all((miss > 0) & (miss < 1))


def test_the_planning_prior_only_changes_r_not_the_rules_shape():
    counts = _counts([[5, 5, 5]] * 3, [[0, 3, 5]] * 3)
    for prior in ad.PRIORS:
        cells = ad.allocate(counts, ad.Design(pilot=5, samples_per_cell=40, target_compute=1e24, prior=prior))
        assert all(c.start == 5 and c.r >= 1 and c.budget == 2000 for c in cells.values())


def test_an_unknown_prior_is_named():
    with pytest.raises(UserError, match="'prior'"):
        ad.Design(prior="flat")


@pytest.mark.parametrize("passed", [0, 5])
def test_posterior_moments_stay_finite_when_a_checkpoint_always_or_never_passes(passed):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inverse, miss = ad.posterior_moments(np.full(40, 5), np.full(40, passed), np.zeros(40, int), budget=500)
    assert np.all(np.isfinite(inverse)) and np.all((inverse >= 1) & (inverse <= 500))
