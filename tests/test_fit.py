"""Capability fit: the forecast JSON contract, target handling, buckets, failure paths with clear messages."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.forecast.fit import FitOptions
from pipeline.forecast.capability import forecast_from_counts, forecast_or_error
from pipeline.records import PassCount, write_pass_counts
from simulated.family import TARGET_NAME, FamilySpec, sample_counts, simulate_family

FAST = FitOptions(bootstrap=200)


@pytest.fixture(scope="module")
def family():
    return simulate_family(FamilySpec(n_problems=80, target_factor=30), seed=5)


@pytest.fixture(scope="module")
def counts(family):
    return sample_counts(family, 100, np.random.default_rng(5))


@pytest.fixture(scope="module")
def by_method(counts):
    """The forecast of ``counts`` with FAST and each method, fitted once for the module (fits are deterministic)."""
    made = {}

    def forecast_with(method: str) -> dict:
        if method not in made:
            made[method] = forecast_from_counts(counts, None, None, replace(FAST, method=method))
        return made[method]
    return forecast_with


@pytest.fixture(scope="module")
def forecast(by_method):
    return by_method("default")


def test_contract_fields(forecast):
    for key in ("target", "alpha", "k", "problems", "prediction", "actual", "buckets", "method", "points",
                "excluded", "non_monotone", "alpha_interval", "k_interval", "curve"):
        assert key in forecast
    p = forecast["prediction"]
    assert p["interval"][0] <= p["value"] <= p["interval"][1] and p["level"] == 0.9
    assert forecast["alpha"] > 0 and forecast["alpha_interval"][0] <= forecast["alpha"] <= forecast["alpha_interval"][1]


def test_forecast_json_is_finite_and_serialisable(forecast):
    text = json.dumps(forecast, allow_nan=False)
    assert "NaN" not in text


def test_default_target_is_largest_compute_and_never_fitted(forecast, family):
    assert forecast["target"] == {"name": TARGET_NAME, "compute": family.target_compute}
    assert TARGET_NAME not in forecast["models"]
    target_point = [p for p in forecast["points"] if p["checkpoint"] == TARGET_NAME][0]
    assert target_point["used_in_fit"] is False and target_point["normalized_compute"] == 1.0


def test_target_counts_do_not_change_the_prediction(counts, forecast):
    flipped = [replace(c, passed=c.n - c.passed) if c.checkpoint == TARGET_NAME else c for c in counts]
    a = forecast["prediction"]
    b = forecast_from_counts(flipped, None, None, FAST)["prediction"]
    assert a == b


def test_forecast_without_target_counts_uses_given_compute(counts, family, forecast):
    fit_only = [c for c in counts if c.checkpoint != TARGET_NAME]
    out = forecast_from_counts(fit_only, "big", family.target_compute, FAST)
    with_counts = forecast
    assert "actual" not in out and out["target"]["name"] == "big"
    assert out["prediction"]["value"] == pytest.approx(with_counts["prediction"]["value"])


def test_raw_flops_scale_does_not_matter(counts, forecast):
    scaled = [replace(c, compute=c.compute * 1e3) for c in counts]
    a = forecast["prediction"]["value"]
    assert forecast_from_counts(scaled, None, None, FAST)["prediction"]["value"] == pytest.approx(a)


@pytest.mark.parametrize("method", ["aggregate", "per-problem", "default"])
def test_each_method_forecasts_near_the_truth(by_method, family, method):
    out = by_method(method)
    truth = family.true_mean_log_pass_rate(out["problems"])
    tolerance = 0.35 if method == "aggregate" else 0.1     # the aggregate law is biased by exponent spread
    assert abs(out["prediction"]["value"] - truth) <= tolerance * abs(truth)


def test_aggregate_recovers_an_exact_power_law():
    alpha, k = 0.4, 0.25
    compute = np.logspace(-4, -2, 6)
    rows = [PassCount(f"m{j}", float(c), f"T/{i}", 10**9, int(round(10**9 * np.exp(-alpha * c**-k))))
            for j, c in enumerate(compute) for i in range(3)]
    out = forecast_from_counts(rows, "target", 1.0, replace(FAST, method="aggregate", buckets=1))
    assert out["alpha"] == pytest.approx(alpha, rel=1e-3) and out["k"] == pytest.approx(k, rel=1e-3)


def test_buckets_split_all_but_the_hardest(forecast):
    buckets = forecast["buckets"]
    members = [t for b in buckets for t in b["members"]]
    assert len(buckets) == 6 and forecast["hardest_excluded"]["count"] == round(80 * 15 / 164)
    assert not set(members) & set(forecast["hardest_excluded"]["problems"])
    rates = [b["pass_rate_range"] for b in buckets]
    assert all(rates[i][0] >= rates[i + 1][1] for i in range(len(rates) - 1))   # easiest first
    assert all(b["prediction"] is not None for b in buckets)


def test_bucket_options(counts):
    out = forecast_from_counts(counts, None, None, replace(FAST, buckets=3, hardest_excluded=0))
    assert len(out["buckets"]) == 3 and out["hardest_excluded"]["count"] == 0


def test_falling_problems_are_listed():
    fam = simulate_family(FamilySpec(n_problems=60, non_monotone_fraction=0.1, non_monotone_k=(-0.4, -0.3),
                                     difficulty_median=0.7, noise_sd=0.0), seed=9)
    out = forecast_from_counts(sample_counts(fam, 400, np.random.default_rng(9)), None, None, FAST)
    assert set(fam.non_monotone) & set(out["non_monotone"])
    assert set(out["non_monotone"]) <= set(fam.non_monotone)


def test_actual_uses_only_problems_the_target_solves(counts):
    first = next(c for c in counts if c.checkpoint == TARGET_NAME)
    broken = [replace(c, passed=0) if c is first else c for c in counts]
    out = forecast_from_counts(broken, None, None, FAST)
    assert out["actual"]["unsolved_by_target"] == [first.task_id]
    assert out["actual"]["n_problems"] == len(out["problems"]) - 1
    assert np.isfinite(out["actual"]["value"]) and "prediction_on_same_problems" in out["actual"]


def _family_rows(n_ckpt, solved=True):
    return [PassCount(f"m{j}", 10.0 ** (18 + j), f"T/{i}", 10, (3 if solved else 0) if j == 0 else 5)
            for j in range(n_ckpt) for i in range(4)]


@pytest.mark.parametrize("rows,kwargs,message", [
    (_family_rows(3), {}, "at least 3 checkpoints below the target"),
    (_family_rows(4), {"target_name": "nope"}, "not in the pass counts"),
    (_family_rows(5), {"target_compute": -1.0}, "must be positive"),
    (_family_rows(5) + [PassCount("m1", 10.0**19, "T/9", 10, 0)], {"max_fit_compute_fraction": 0.0015},
     "at least 3 checkpoints"),
])
def test_failure_paths_name_the_problem(rows, kwargs, message):
    options = replace(FAST, max_fit_compute_fraction=kwargs.pop("max_fit_compute_fraction", None))
    with pytest.raises(UserError, match=message):
        forecast_from_counts(rows, kwargs.get("target_name"), kwargs.get("target_compute"), options)


def test_no_qualifying_problem_is_a_clear_error():
    rows = [PassCount(f"m{j}", 10.0 ** (18 + j), f"T/{i}", 10, 0 if i == j else 5) for j in range(5) for i in range(4)]
    with pytest.raises(UserError, match="no problem qualifies"):
        forecast_from_counts(rows, None, None, FAST)


@pytest.mark.parametrize("options,message", [(replace(FAST, level=1.5), "level"),
                                             (replace(FAST, method="magic"), "unknown fit method"),
                                             (replace(FAST, buckets=0), "--buckets")])
def test_bad_options_are_refused(counts, options, message):
    with pytest.raises(UserError, match=message):
        forecast_from_counts(counts, None, None, options)


def test_aggregate_refuses_checkpoint_that_never_fails():
    rows = [PassCount(f"m{j}", 10.0 ** (18 + j), f"T/{i}", 10, 10 if j == 3 else 5) for j in range(5) for i in range(4)]
    with pytest.raises(UserError, match="solves every problem in every sample"):
        forecast_from_counts(rows, None, None, replace(FAST, method="aggregate"))


def test_forecast_or_error_returns_the_message():
    out = forecast_or_error(_family_rows(3), None, None, FAST)
    assert "at least 3 checkpoints" in out["error"] and "prediction" not in out


def test_cli_fit_on_csv_and_run_dir(tmp_path, counts, capsys):
    from pipeline.cli import main

    csv = tmp_path / "pass_counts.csv"
    write_pass_counts(csv, counts)
    assert main(["fit", "--pass-counts", str(csv), "--out", str(tmp_path / "f.json"), "--bootstrap", "100"]) == 0
    assert json.loads((tmp_path / "f.json").read_text())["method"] == "stacked"
    assert main(["fit", "--run", str(tmp_path), "--method", "aggregate", "--bootstrap", "100"]) == 0
    assert json.loads((tmp_path / "forecast.json").read_text())["method"] == "aggregate"
    assert "wrote" in capsys.readouterr().out


def test_cli_fit_takes_the_run_directory_as_other_commands_do(tmp_path, counts):
    from pipeline.cli import main

    write_pass_counts(tmp_path / "pass_counts.csv", counts)
    assert main(["fit", str(tmp_path), "--method", "aggregate", "--bootstrap", "100"]) == 0
    positional = json.loads((tmp_path / "forecast.json").read_text())
    assert main(["fit", "--run", str(tmp_path), "--method", "aggregate", "--bootstrap", "100"]) == 0
    assert json.loads((tmp_path / "forecast.json").read_text()) == positional


@pytest.mark.parametrize("argv,message", [
    (["fit", "--pass-counts", "/nonexistent.csv", "--out", "x.json"], "file not found"),
    (["fit", "--pass-counts", "PLACEHOLDER"], "give --out"),
    (["fit"], "give a run directory"),
    (["fit", "/run-a", "--run", "/run-b"], "two run directories"),
    (["fit", "--run", "/nonexistent-run"], "run directory not found"),
])
def test_cli_fit_errors_exit_2(argv, message, tmp_path, counts, capsys):
    from pipeline.cli import main

    csv = tmp_path / "c.csv"
    write_pass_counts(csv, counts)
    assert main([str(csv) if a == "PLACEHOLDER" else a for a in argv]) == 2
    assert message in capsys.readouterr().err


def test_bucket_without_qualifying_problems_carries_its_reason():
    rows = [PassCount(f"m{j}", 10.0 ** (18 + j), f"T/{i}", 20,
                      (0 if j == 0 else 2) if i >= 8 else 8 + j + i % 4) for j in range(5) for i in range(12)]
    out = forecast_from_counts(rows, None, None, replace(FAST, buckets=3, hardest_excluded=0))
    last = out["buckets"][-1]
    assert last["prediction"] is None and "not forecastable" in last["error"]
    assert sorted(last["not_qualifying"]) == sorted(f"T/{i}" for i in range(8, 12))
    assert out["buckets"][0]["prediction"] is not None


def test_cli_reports_bad_csv_line(tmp_path, capsys):
    from pipeline.cli import main

    csv = tmp_path / "bad.csv"
    csv.write_text("checkpoint,compute,task_id,n,passed\na,1e20,T/0,10,3\nb,lots,T/0,10,4\n")
    assert main(["fit", "--pass-counts", str(csv), "--out", str(tmp_path / "f.json")]) == 2
    assert "line 3" in capsys.readouterr().err and not (tmp_path / "f.json").exists()


def test_points_include_checkpoints_left_out_of_the_fit(counts, family):
    out = forecast_from_counts(counts, None, None, replace(FAST, max_fit_compute_fraction=family.compute[-2] / family.target_compute))
    by_name = {p["checkpoint"]: p for p in out["points"]}
    assert set(by_name) == set(family.checkpoints) | {TARGET_NAME}
    assert by_name[family.checkpoints[-1]]["used_in_fit"] is False and family.checkpoints[-1] not in out["models"]
    assert any(e["id"] == family.checkpoints[-1] and "x target" in e["reason"] for e in out["excluded"])


@pytest.mark.parametrize("method", ["aggregate", "per-problem"])
def test_curve_ends_at_the_prediction_and_stays_inside_its_band(by_method, method):
    out = by_method(method)
    curve = out["curve"]
    assert len(curve) > 2 and curve[-1]["normalized_compute"] == pytest.approx(1.0)
    assert curve[-1]["value"] == pytest.approx(out["prediction"]["value"], rel=1e-6)
    assert all(c["interval"][0] <= c["value"] <= c["interval"][1] for c in curve)
    values = [c["value"] for c in curve]
    assert all(a <= b for a, b in zip(values, values[1:]))       # capability improves along the fitted law
    first_fit = min(p["normalized_compute"] for p in out["points"] if p["used_in_fit"])
    measured = [p for p in out["points"] if p["normalized_compute"] == first_fit][0]["mean_log_pass_rate"]
    assert curve[0]["value"] == pytest.approx(measured, rel=0.15)
