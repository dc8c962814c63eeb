"""Issue 25: the terminal says what the report says. The backtest's error is one measure everywhere (median |error|
in mean log pass rate; a relative error of a log rate near 0 means nothing), and no bound prints as '-0.0000'."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from pipeline.forecast.backtest import backtest, format_table
from pipeline.forecast.fit import FitOptions
from simulated.family import FamilySpec, sample_counts, simulate_family
from pipeline.passk import fixed
from pipeline.records import atomic_write_json, write_pass_counts
from pipeline.summary import format_summary, run_summary


@pytest.mark.parametrize("value,text", [(-3.1e-6, "-3.1e-06"), (-0.0, "0.0000"), (0.0, "0.0000"),
                                        (-0.25331, "-0.2533"), (4e-5, "4e-05"), (None, "n/a")])
def test_fixed_never_prints_negative_zero(value, text):
    assert fixed(value) == text


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    fam = simulate_family(FamilySpec(n_problems=30, n_checkpoints=6, difficulty_median=0.9), seed=3)
    counts = sample_counts(fam, n=40, rng=np.random.default_rng(4))
    counts = [c for c in counts if c.checkpoint in fam.checkpoints]
    run = tmp_path_factory.mktemp("run")
    write_pass_counts(run / "pass_counts.csv", counts)
    result = backtest(counts, FitOptions(bootstrap=30), ["aggregate"])
    atomic_write_json(run / "backtest.json", result)
    from pipeline.forecast.capability import forecast_from_counts

    forecast = forecast_from_counts(counts, None, fam.target_compute, FitOptions(bootstrap=30, method="aggregate"))
    forecast["prediction"] |= {"value": -0.0062, "interval": [-0.2533, -3.1e-6]}   # a bound just below 0
    atomic_write_json(run / "forecast.json", forecast)
    return run, result


def test_terminal_backtest_line_gives_the_reports_median_abs_error(run_dir):
    from pipeline.report.inputs import load_run
    from pipeline.report.sections import backtest_summary

    run, result = run_dir
    terminal = format_summary(run_summary(run))
    report = backtest_summary(load_run(run))
    said = re.search(r"median \|error\| (\S+) in mean log pass rate", terminal).group(1)
    assert f"median |error| {said} in mean log pass rate" in report.replace("−", "-")
    assert float(said) == pytest.approx(result["summary"]["aggregate"]["median_abs_error"], rel=0.05)
    assert "relative" not in terminal


def test_backtest_table_prints_signed_errors_not_relative_ones(run_dir):
    _, result = run_dir
    table = format_table(result)
    rows = [line for line in table.splitlines()[1:] if not line.startswith("aggregate:")]
    assert rows and not any("%" in line for line in rows) and "median |error|" in table
    scored = next(r for r in result["rows"] if r.get("error") is None)
    assert f"{scored['signed_error']:+.4f}" in table


def test_no_interval_bound_prints_as_negative_zero(run_dir):
    run, _ = run_dir
    text = format_summary(run_summary(run))
    assert "-0.0000" not in text and "[-0.2533, -3.1e-06]" in text
    assert json.loads(json.dumps(run_summary(run)))["forecast"]["interval"][1] == -3.1e-6   # JSON keeps the value
