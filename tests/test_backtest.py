"""Backtest: hold out the largest checkpoints in turn; rows, coverage, failures, CLI on run dir and bare CSV."""
from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.forecast.backtest import backtest
from pipeline.errors import UserError
from pipeline.forecast.fit import FitOptions
from pipeline.records import PassCount, write_pass_counts
from simulated.family import FamilySpec, sample_counts, simulate_family

FAST = FitOptions(bootstrap=100, buckets=1)


@pytest.fixture
def cli_main():
    import pipeline.cli as cli

    return cli.main


@pytest.fixture(scope="module")
def counts():
    family = simulate_family(FamilySpec(n_problems=60, n_checkpoints=6, target_factor=10), seed=3)
    return sample_counts(family, 100, np.random.default_rng(3))


def test_rows_per_holdout_target_and_method(counts):
    result = backtest(counts, FAST, max_holdout=2)
    keys = [(r["holdout"], r["target"], r["method"]) for r in result["rows"]]
    assert keys == [(1, "target", "aggregate"), (1, "target", "stacked"),
                    (2, "sim-5", "aggregate"), (2, "sim-5", "stacked"),
                    (2, "target", "aggregate"), (2, "target", "stacked")]


def test_rows_score_error_and_coverage(counts):
    result = backtest(counts, FAST, methods=["per-problem"], max_holdout=2)
    for r in result["rows"]:
        assert r["error"] is None and r["extrapolation"] > 1
        assert r["signed_error"] == pytest.approx(r["prediction"] - r["actual"])
        assert r["covered"] == (r["judged_by"][0] <= r["actual"] <= r["judged_by"][1])
        assert r["judged_by"] == r["measurement_interval"] and r["covered_by"] == "measurement interval"
    s = result["summary"]["per-problem"]
    assert s["scored"] == 3 and 0 <= s["coverage"] <= 1 and s["median_relative_error"] >= 0


def test_the_held_out_checkpoints_are_never_fitted(counts):
    rows = backtest(counts, FAST, methods=["aggregate"], max_holdout=1)["rows"]
    changed = [c if c.checkpoint != "target" else PassCount(c.checkpoint, c.compute, c.task_id, c.n, c.n)
               for c in counts]
    again = backtest(changed, FAST, methods=["aggregate"], max_holdout=1)["rows"]
    assert rows[0]["prediction"] == again[0]["prediction"] and rows[0]["actual"] != again[0]["actual"]


def test_a_fit_that_cannot_be_made_is_a_row_with_its_reason():
    rows = [PassCount(f"m{j}", 10.0 ** (18 + j), f"T/{i}", 20, 0 if j == 0 else 4 + j + i % 3)
            for j in range(5) for i in range(6)]
    result = backtest(rows, FAST, methods=["aggregate"])
    failed = [r for r in result["rows"] if r["error"]]
    assert failed and all("at least 3 checkpoints" in r["error"] for r in failed)
    assert result["summary"]["aggregate"]["failed"] == len(failed)


@pytest.mark.parametrize("kwargs,message", [({"max_holdout": 0}, "--max-holdout"),
                                            ({"methods": ["nope"]}, "unknown fit method")])
def test_bad_arguments_are_refused(counts, kwargs, message):
    with pytest.raises(UserError, match=message):
        backtest(counts, FAST, **kwargs)


def test_too_few_checkpoints_is_a_clear_error():
    rows = [PassCount(f"m{j}", 10.0 ** (18 + j), "T/0", 10, 5) for j in range(3)]
    with pytest.raises(UserError, match="at least 4 checkpoints"):
        backtest(rows, FAST)


def test_cli_on_run_dir_writes_backtest_json(tmp_path, counts, capsys, cli_main):
    main = cli_main
    write_pass_counts(tmp_path / "pass_counts.csv", counts)
    assert main(["backtest", "--run", str(tmp_path), "--max-holdout", "1", "--bootstrap", "100"]) == 0
    assert json.loads((tmp_path / "backtest.json").read_text())["summary"]
    assert "coverage" in capsys.readouterr().out


def test_cli_takes_the_run_directory_as_other_commands_do(tmp_path, counts, cli_main):
    write_pass_counts(tmp_path / "pass_counts.csv", counts)
    assert cli_main(["backtest", str(tmp_path), "--max-holdout", "1", "--bootstrap", "100"]) == 0
    assert json.loads((tmp_path / "backtest.json").read_text())["summary"]


def test_cli_on_bare_csv_prints_and_writes_only_with_out(tmp_path, counts, capsys, cli_main):
    main = cli_main
    csv = tmp_path / "c.csv"
    write_pass_counts(csv, counts)
    assert main(["backtest", "--pass-counts", str(csv), "--max-holdout", "1", "--method", "aggregate"]) == 0
    assert "aggregate" in capsys.readouterr().out and not (tmp_path / "backtest.json").exists()
    assert main(["backtest", "--pass-counts", str(csv), "--method", "nope"]) == 2
