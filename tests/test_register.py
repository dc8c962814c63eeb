"""Registered forecasts: immutable records, the target left out, scoring, and the before/after rule."""
import argparse
import json
import math
import os
import stat
import time

import numpy as np
import pytest

from pipeline.forecast import register as reg
from pipeline.errors import UserError
from pipeline.forecast.fit import FitOptions
from pipeline.records import write_pass_counts
from simulated.family import FamilySpec, TARGET_NAME, sample_counts, simulate_family
from simulated.runs import write_sim_manifest

FAST = FitOptions(bootstrap=20, alternatives=False, buckets=2)


@pytest.fixture(scope="module")
def family():
    fam = simulate_family(FamilySpec(n_problems=40, n_checkpoints=5, difficulty_median=0.8), seed=4)
    return fam, sample_counts(fam, n=100, rng=np.random.default_rng(0))


def _run_dir(tmp_path, fam, counts, with_target=False):
    run = tmp_path / "run"
    run.mkdir()
    write_sim_manifest(run, fam, fit={"bootstrap": 20, "buckets": 2, "level": 0.9})
    write_pass_counts(run / "pass_counts.csv", [c for c in counts if with_target or c.checkpoint != TARGET_NAME])
    return run


def test_record_is_read_only_and_has_the_contracted_fields(tmp_path, family):
    run = _run_dir(tmp_path, *family)
    path = reg.register_forecast(run, options=FAST)
    assert path.parent == run / "forecasts" and stat.S_IMODE(os.stat(path).st_mode) == 0o444
    record = json.loads(path.read_text())
    assert record["inputs"]["pass_counts_sha256"][:12] in path.name
    assert {"capforecast"} <= set(record["code_version"]) and record["registered_at"].endswith("Z")
    assert record["target_evidence_at_registration"]["none"] is True
    assert record["forecast"]["prediction"]["value"] < 0


def test_registration_refuses_to_overwrite(tmp_path, family):
    run = _run_dir(tmp_path, *family)
    path = reg.register_forecast(run, options=FAST)
    record = json.loads(path.read_text())
    with pytest.raises(UserError, match="never overwritten"):
        reg.write_record(path.parent, record)
    assert json.loads(path.read_text()) == record


def test_target_counts_are_removed_before_fitting_and_noted(tmp_path, family):
    fam, counts = family
    run = _run_dir(tmp_path, fam, counts, with_target=True)
    record = json.loads(reg.register_forecast(run, options=FAST, force=True).read_text())
    without = [c for c in counts if c.checkpoint != TARGET_NAME]
    assert record["inputs"]["pass_counts_sha256"] == reg.counts_digest(without)
    assert record["inputs"]["target_rows_removed"] == 40 and TARGET_NAME not in record["inputs"]["checkpoints"]
    assert record["target_evidence_at_registration"]["none"] is False


def test_digest_ignores_row_order(family):
    counts = family[1]
    assert reg.counts_digest(counts) == reg.counts_digest(list(reversed(counts)))


def test_score_before_samples_existed(tmp_path, family):
    fam, counts = family
    run = _run_dir(tmp_path, fam, counts)
    reg.register_forecast(run, options=FAST)
    time.sleep(0.01)
    (run / "samples").mkdir()
    (run / "samples" / f"{TARGET_NAME}.jsonl").write_text(json.dumps({"task_id": "Sim/0", "completion": ""}) + "\n")
    write_pass_counts(run / "pass_counts.csv", counts)
    score = reg.score_forecasts(run)["scores"][0]
    assert score["registered_before_target_samples"] is True
    assert score["actual"]["value"] < 0 and isinstance(score["within_interval"], bool)
    assert score["signed_error"] == pytest.approx(score["prediction"]["value"] - score["actual"]["value"])
    assert score["pass_rate_ratio"] == pytest.approx(math.exp(score["actual"]["value"] - score["prediction"]["value"]))
    assert (run / "forecasts" / "scores.json").exists()


def test_score_after_when_samples_predate_the_record(tmp_path, family):
    fam, counts = family
    run = _run_dir(tmp_path, fam, counts)
    (run / "samples").mkdir()
    sample = {"task_id": "Sim/0", "completion": "", "generated_at": "2000-01-01T00:00:00Z"}
    (run / "samples" / f"{TARGET_NAME}.jsonl").write_text(json.dumps(sample) + "\n")
    reg.register_forecast(run, options=FAST, force=True)
    write_pass_counts(run / "pass_counts.csv", counts)
    score = reg.score_forecasts(run)["scores"][0]
    assert score["registered_before_target_samples"] is False


def test_backdated_sample_times_are_caught(tmp_path, family):
    fam, counts = family
    run = _run_dir(tmp_path, fam, counts)
    reg.register_forecast(run, options=FAST)
    (run / "samples").mkdir()
    sample = {"task_id": "Sim/0", "completion": "", "generated_at": "2000-01-01T00:00:00Z"}
    (run / "samples" / f"{TARGET_NAME}.jsonl").write_text(json.dumps(sample) + "\n")
    write_pass_counts(run / "pass_counts.csv", counts)
    score = reg.score_forecasts(run)["scores"][0]
    assert score["registered_before_target_samples"] is False and "2000-01-01" in score["why"]


def _cli(argv):
    parser = argparse.ArgumentParser()
    reg.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_on_a_bare_csv(tmp_path, family):
    fam, counts = family
    csv_path = tmp_path / "counts.csv"
    write_pass_counts(csv_path, counts)
    assert _cli(["forecast", "--pass-counts", str(csv_path), "--target", TARGET_NAME, "--force"]) == 0
    assert _cli(["score", "--pass-counts", str(csv_path)]) == 0
    scores = json.loads((tmp_path / "forecasts" / "scores.json").read_text())["scores"]
    assert scores[0]["registered_before_target_samples"] is False  # the CSV held the target's counts
    assert scores[0]["actual"]["problems_used"] > 0


@pytest.mark.parametrize("argv,message", [
    (["forecast"], "run directory or --pass-counts"),
    (["score"], "run directory or --pass-counts"),
])
def test_missing_inputs(argv, message):
    with pytest.raises(UserError, match=message):
        _cli(argv)


def test_csv_without_target_needs_its_compute(tmp_path, family):
    fam, counts = family
    csv_path = tmp_path / "counts.csv"
    write_pass_counts(csv_path, [c for c in counts if c.checkpoint != TARGET_NAME])
    with pytest.raises(UserError, match="--target-compute"):
        reg.register_forecast(counts_path=csv_path, target=TARGET_NAME, options=FAST)


def test_score_without_records_or_with_a_foreign_file(tmp_path, family):
    fam, counts = family
    run = _run_dir(tmp_path, fam, counts)
    with pytest.raises(UserError, match="no registered forecasts"):
        reg.score_forecasts(run)
    (run / "forecasts").mkdir()
    (run / "forecasts" / "x.json").write_text("{}")
    with pytest.raises(UserError, match="not a registered forecast"):
        reg.score_forecasts(run)
