"""PassUntil estimators: exact unbiasedness, unbiasedness by simulation, truncation bias, order, bad input."""
import json

import numpy as np
import pytest

from pipeline.sampling import passuntil as pu
from pipeline.errors import UserError


@pytest.mark.parametrize("r", [1, 2, 3, 5, 10])
@pytest.mark.parametrize("p", [0.7, 0.2, 0.03])
def test_mean_is_exactly_log_p(r, p):
    mean, _ = pu.exact_moments(p, r)
    assert mean == pytest.approx(np.log(p), abs=1e-9)


@pytest.mark.parametrize("r", [1, 2, 4])
@pytest.mark.parametrize("p", [0.5, 0.05])
def test_variance_estimator_is_exactly_unbiased(r, p):
    from scipy import stats
    _, var = pu.exact_moments(p, r)
    n = np.arange(r, int(stats.nbinom.isf(1e-14, r, p)) + r + 1)
    expected_v = np.sum(stats.nbinom.pmf(n - r, r, p) * pu.variance_estimate(n, r))
    assert expected_v == pytest.approx(var, rel=1e-8)


@pytest.mark.parametrize("r,p", [(1, 0.3), (1, 0.01), (2, 0.1), (3, 0.004), (8, 0.05)])
def test_unbiased_by_simulation(r, p):
    rng = np.random.default_rng(r * 1000 + int(p * 1000))
    n = r + rng.negative_binomial(r, p, size=200_000)
    est = pu.log_p_estimate(n, r)
    se = est.std() / np.sqrt(len(est))
    assert abs(est.mean() - np.log(p)) < 4 * se
    assert pu.variance_estimate(n, r).mean() == pytest.approx(est.var(), rel=0.05)


def test_naive_log_r_over_n_is_biased():
    """The plug-in log(r/N) is biased; the unbiased form is not just a renaming of it."""
    rng = np.random.default_rng(7)
    n = 1 + rng.negative_binomial(1, 0.05, size=200_000)
    assert np.mean(np.log(1 / n)) - np.log(0.05) > 0.3  # about Euler gamma = 0.58 as p -> 0


@pytest.mark.parametrize("r,p,budget", [(1, 0.01, 100), (2, 0.02, 150), (1, 0.2, 10)])
def test_truncation_bias_matches_simulation(r, p, budget):
    rng = np.random.default_rng(11)
    n = np.minimum(r + rng.negative_binomial(r, p, size=200_000), budget)
    est = pu.log_p_estimate(n, r)
    bias = pu.truncation_bias(p, r, budget)[0]
    assert bias > 0
    assert abs(est.mean() - np.log(p) - bias) < 4 * est.std() / np.sqrt(len(est))
    assert pu.exact_moments(p, r, budget)[0] == pytest.approx(np.log(p) + bias, abs=1e-9)


def test_truncation_bias_vanishes_with_a_large_budget():
    assert pu.truncation_bias(0.2, 1, 200)[0] < 1e-15


def test_estimate_cell_statuses():
    seq = [False, False, True, False, True]
    done = pu.estimate_cell("m", "t", seq, r=2, budget=10)
    assert (done.status, done.draws) == (pu.COMPLETE, 5)
    assert done.log_p == pytest.approx(-(1 / 2 + 1 / 3 + 1 / 4))
    assert pu.estimate_cell("m", "t", seq, r=3, budget=10).status == pu.PENDING
    cut = pu.estimate_cell("m", "t", seq, r=3, budget=5)
    assert cut.status == pu.TRUNCATED and cut.bias_bound > 0


def test_estimate_cell_ignores_draws_before_start_and_after_stop():
    seq = [True, True, False, True, True, True]
    cell = pu.estimate_cell("m", "t", seq, r=1, budget=10, start=2)
    assert cell.draws == 2 and cell.log_p == pytest.approx(-1.0)


def test_truncated_cell_with_no_success_reports_unbounded_bias():
    cell = pu.estimate_cell("m", "t", [False] * 20, r=1, budget=20)
    assert cell.status == pu.TRUNCATED and cell.bias_bound == np.inf


def test_mean_refuses_pending_and_truncated_cells():
    cells = [pu.estimate_cell("m", "a", [True], 1, 5), pu.estimate_cell("m", "b", [False] * 5, 1, 5)]
    with pytest.raises(UserError, match="truncated"):
        pu.mean_log_pass(cells)
    value, se = pu.mean_log_pass(cells, allow_truncated=True)
    assert np.isfinite(value) and se > 0


def test_outcomes_follow_sample_index_not_file_order():
    rows = [{"checkpoint": "m", "task_id": "t", "sample_index": i, "passed": i == 0, "status": "x"}
            for i in (2, 1, 0)]
    seqs = pu.ordered_outcomes(("f", n, row) for n, row in enumerate(rows, 1))
    assert seqs[("m", "t")] == [True, False, False]


def test_sequence_stops_at_a_gap_or_sandbox_error():
    rows = [{"checkpoint": "m", "task_id": "t", "sample_index": i, "passed": False, "status": s}
            for i, s in [(0, "failed"), (1, "sandbox error"), (2, "passed")]]
    rows[2]["passed"] = True
    assert pu.ordered_outcomes(("f", 1, r) for r in rows)[("m", "t")] == [False]
    rows[1] = {**rows[1], "status": "failed"}  # re-judged later: the last verdict wins
    assert pu.ordered_outcomes(("f", 1, r) for r in rows)[("m", "t")] == [False, False, True]


@pytest.mark.parametrize("row,field", [
    ({"checkpoint": "m", "task_id": "t", "passed": True}, "sample_index"),
    ({"checkpoint": "m", "task_id": "t", "sample_index": -1, "passed": True}, "sample_index"),
    ({"checkpoint": "m", "task_id": "t", "sample_index": "3", "passed": True}, "sample_index"),
    ({"task_id": "t", "sample_index": 0, "passed": True}, "checkpoint"),
])
def test_bad_verdict_rows_name_file_line_and_field(tmp_path, row, field):
    (tmp_path / "m.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(UserError, match=rf"m.jsonl, line 1: field '{field}'"):
        pu.read_ordered_outcomes(tmp_path)


@pytest.mark.parametrize("call", [lambda: pu.log_p_estimate(0, 1), lambda: pu.log_p_estimate(3, 0),
                                  lambda: pu.log_p_estimate(2, 3), lambda: pu.exact_moments(0.0, 1),
                                  lambda: pu.estimate_cell("m", "t", [True], r=3, budget=2),
                                  lambda: pu.read_ordered_outcomes("/nonexistent-dir")])
def test_bad_arguments_raise_user_error(call):
    with pytest.raises(UserError):
        call()
