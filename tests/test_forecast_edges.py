"""The forecast at its edges: one-sided posteriors, buckets that add up, greedy data, cutoffs, intervals that hold
their own forecast."""
from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.forecast.capability import forecast_from_counts, summary_text
from pipeline.forecast.fit import FitOptions
from simulated.family import FamilySpec, sample_counts, simulate_family
from pipeline.records import PassCount

FAST = FitOptions(bootstrap=200, alternatives=False)


def _easy_and_hard_rows(n: int = 20) -> list[PassCount]:
    """Four checkpoints; problems 0-3 solved in every sample at every size, the rest improving with size."""
    rng = np.random.default_rng(0)
    rows = []
    for j in range(5):
        compute = 1e21 * 3.0 ** j
        for i in range(30):
            p = 1.0 if i < 4 else float(np.exp(-(0.3 + 0.1 * i) * 3.0 ** (-0.3 * j)))
            rows.append(PassCount(f"size-{j}", compute, f"T/{i}", n, int(rng.binomial(n, p))))
    return rows


@pytest.fixture(scope="module")
def edge_forecast():
    return forecast_from_counts(_easy_and_hard_rows(), None, None, FAST)


def test_problems_solved_in_every_sample_stay_near_certain(edge_forecast):
    rates = dict(zip(edge_forecast["problems"], np.exp(edge_forecast["law"]["problem_log_pass_rate_at_target"])))
    assert min(rates[f"T/{i}"] for i in range(4)) > 0.9


def test_forecast_lies_inside_its_interval(edge_forecast):
    p = edge_forecast["prediction"]
    assert p["interval"][0] <= p["value"] <= p["interval"][1]


@pytest.fixture(scope="module")
def family_forecast():
    family = simulate_family(FamilySpec(n_problems=90, n_checkpoints=6, target_factor=20, non_monotone_fraction=0.1),
                             seed=4)
    counts = sample_counts(family, 60, np.random.default_rng(4))
    return forecast_from_counts(counts, None, None, replace(FAST, buckets=6))


def test_buckets_and_hardest_add_up_to_the_overall_forecast(family_forecast):
    parts = [(len(b["problems"]), b["prediction"]["value"]) for b in family_forecast["buckets"] if b["prediction"]]
    hardest = family_forecast["hardest_excluded"]
    if hardest.get("prediction"):
        parts.append((len(hardest["qualifying"]), hardest["prediction"]["value"]))
    assert sum(n for n, _ in parts) == len(family_forecast["problems"])
    weighted = sum(n * v for n, v in parts) / sum(n for n, _ in parts)
    assert weighted == pytest.approx(family_forecast["prediction"]["value"], rel=1e-9)


def test_every_forecast_bucket_has_at_least_five_problems(family_forecast):
    for b in family_forecast["buckets"]:
        assert b["prediction"] is None or len(b["problems"]) >= 5, b["bucket"]


def test_small_buckets_are_merged_with_a_neighbour():
    from pipeline.forecast.buckets import merge_small

    groups = [["a", "b", "c", "d", "e", "f"], ["g", "h"], ["i", "j", "k", "l", "m"], ["x"]]
    assert merge_small(groups, set("abcdefghijklm")) == [[0], [1, 2], [3]]   # into the smaller neighbour


def test_a_bucket_curve_ends_at_its_forecast(family_forecast):
    for b in family_forecast["buckets"]:
        if b["prediction"]:
            assert b["curve"][-1]["value"] == pytest.approx(b["prediction"]["value"])


def test_negative_exponents_are_flagged_with_their_share(family_forecast):
    neg = family_forecast["negative_exponent"]
    assert neg["problems"] and 0 < neg["share_of_forecast"] < 1


@pytest.mark.parametrize("method", ["default", "aggregate", "per-problem", "sigmoid"])
def test_greedy_data_is_refused_by_every_method(method):
    rows = [PassCount(f"m{j}", 1e21 * 2.0 ** j, f"T/{i}", 1, int((i + j) % 3 == 0)) for j in range(5) for i in range(20)]
    with pytest.raises(UserError, match="greedy"):
        forecast_from_counts(rows, None, None, replace(FAST, method=method))


def test_fit_summary_names_the_checkpoints_used(edge_forecast):
    assert "fit on 4 checkpoints: size-0, size-1, size-2, size-3" in summary_text(edge_forecast)


def test_a_checkpoint_just_below_the_target_compute_is_named_in_a_warning():
    rows = _easy_and_hard_rows()
    out = forecast_from_counts(rows, None, 1e21 * 27.0 * 1.05, FAST)
    assert any("'size-3'" in w and "10%" in w for w in out["warnings"])


def test_three_checkpoints_say_the_interval_is_uncalibrated():
    rows = [r for r in _easy_and_hard_rows() if r.checkpoint in ("size-0", "size-1", "size-2", "size-4")]
    assert any("no rolling backtest" in w for w in forecast_from_counts(rows, None, None, FAST)["warnings"])


def test_aggregate_error_names_the_checkpoint():
    rows = [PassCount(f"m{j}", 1e21 * 2.0 ** j, f"T/{i}", 20, 20 if j == 2 else 10) for j in range(5) for i in range(6)]
    with pytest.raises(UserError, match="'m2'"):
        forecast_from_counts(rows, None, None, replace(FAST, method="aggregate"))


NUMBER_AND_INTERVAL = re.compile(r"(-?\d+\.\d+) \((?:forecast|measurement) interval \[(-?\d+\.\d+), (-?\d+\.\d+)\]")


def _pairs(obj):
    """Every (value, interval) pair in a forecast JSON, under the names it is stored with."""
    if isinstance(obj, dict):
        if isinstance(obj.get("value"), float) and isinstance(obj.get("interval"), list):
            yield obj["value"], obj["interval"]
        if isinstance(obj.get("measurement_value"), float):
            yield obj["measurement_value"], obj["measurement_interval"]
        for value in obj.values():
            yield from _pairs(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _pairs(value)


def test_no_forecast_in_the_json_lies_outside_its_interval(family_forecast, edge_forecast):
    pairs = list(_pairs(family_forecast)) + list(_pairs(edge_forecast))
    assert len(pairs) > 20
    for value, (lo, hi) in pairs:
        assert lo <= value <= hi


def test_no_forecast_printed_by_fit_lies_outside_its_interval(family_forecast):
    found = NUMBER_AND_INTERVAL.findall(summary_text(family_forecast))
    assert len(found) == 2
    for value, lo, hi in found:
        assert float(lo) <= float(value) <= float(hi)


def test_backtest_uses_absolute_error_when_the_actual_is_zero():
    from pipeline.forecast.backtest import backtest, format_table

    rows = [PassCount(f"m{j}", 1e21 * 3.0 ** j, f"T/{i}", 20, 20 if j == 4 or i == 0 else min(20, 4 + 4 * j + i))
            for j in range(5) for i in range(8)]
    result = backtest(rows, FAST, methods=["per-problem"], max_holdout=1)
    row = result["rows"][0]
    assert row["actual"] == 0 and row["relative_error"] is None and row["abs_error"] >= 0
    assert "%" not in format_table(result).splitlines()[1]


REPORT_PAIR = re.compile(r"(?:\*\*|\| )(-?\d+(?:\.\d+)?)\*?\*? (?:\| )?\[(-?\d+(?:\.\d+)?), (-?\d+(?:\.\d+)?)\]")


def test_no_forecast_in_the_report_lies_outside_the_interval_beside_it(tmp_path):
    from test_report import make_run

    from pipeline.forecast.backtest import backtest
    from pipeline.records import atomic_write_json, read_pass_counts
    from pipeline.report.stage import write_report

    run = make_run(tmp_path / "run")
    atomic_write_json(run / "backtest.json", backtest(read_pass_counts(run / "pass_counts.csv"),
                                                      FitOptions(bootstrap=100, buckets=3), max_holdout=2))
    write_report(run)
    text = (run / "report.md").read_text().replace("−", "-")
    found = REPORT_PAIR.findall(text) + [m[:3] for m in re.findall(
        r"(-?\d+\.\d+) \[(-?\d+\.\d+), (-?\d+\.\d+)\] \((?:measurement|\d+% forecast) interval", text)]
    assert len(found) > 10
    for value, lo, hi in found:
        assert float(lo) - 1e-3 <= float(value) <= float(hi) + 1e-3, (value, lo, hi)


def test_the_report_shows_the_negative_exponent_share(tmp_path):
    from test_report import make_run

    from pipeline.report.stage import write_report

    run = make_run(tmp_path / "run")
    write_report(run)
    assert "fitted exponent negative;" in (run / "report.md").read_text()
