"""The report stage: report.md, report.html and figures/ from a run directory's stored results.

Run directories are built with the real producers (tests/simulated/family.py + pipeline.forecast.fit), so these tests break
when the forecast format drifts away from what the report reads.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.records import BadInput, atomic_write_json, write_pass_counts
from pipeline.report.stage import write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


_MADE: dict[tuple, Path] = {}


def make_run(run_dir: Path, *, n_problems: int = 40, seed: int = 3, forecast: bool = True) -> Path:
    """A realistic run directory: simulated pass counts, the real fit's forecast.json, a manifest, verdicts.

    Each kind is fitted once per session and copied (the fit is deterministic, so a copy is what a new fit
    would write)."""
    key = (n_problems, seed, forecast)
    if key not in _MADE:
        import atexit
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="capforecast-test-run-"))
        atexit.register(shutil.rmtree, folder, True)
        _MADE[key] = _make_run(folder / "run", n_problems=n_problems, seed=seed, forecast=forecast)
    shutil.copytree(_MADE[key], run_dir, dirs_exist_ok=True)
    return run_dir


def _make_run(run_dir: Path, *, n_problems: int, seed: int, forecast: bool) -> Path:
    from pipeline.forecast.fit import FitOptions
    from pipeline.forecast.capability import forecast_or_error
    from simulated.family import TARGET_NAME, FamilySpec, sample_counts, simulate_family

    family = simulate_family(FamilySpec(n_problems=n_problems, n_checkpoints=5, target_factor=30,
                                        non_monotone_fraction=0.1), seed=seed)
    counts = sample_counts(family, n=100, rng=np.random.default_rng(seed))
    run_dir.mkdir(parents=True, exist_ok=True)
    write_pass_counts(run_dir / "pass_counts.csv", counts)
    if forecast:
        atomic_write_json(run_dir / "forecast.json", forecast_or_error(
            counts, TARGET_NAME, family.target_compute, FitOptions(bootstrap=100, buckets=3, alternatives=False)))
    from pipeline.rundir import RunDir
    from pipeline.rundir.manifest import SandboxRecord
    from simulated.runs import sim_manifest

    manifest = sim_manifest(family, name="simulated")
    manifest.config_digest, manifest.created_at, manifest.problems.digest = "c0ffee" * 10, "2026-11-26T13:00:00Z", "beef" * 16
    manifest.code_version, manifest.packages = {"git_commit": "abc1234"}, {"numpy": np.__version__}
    manifest.sandbox = SandboxRecord(backend="bwrap", limits={"cpu_seconds": 3.0, "wall_seconds": 10.0, "memory_mb": 1024},
                                     calibration_rule="none: one cpu limit for all problems")
    for c in family.checkpoints:
        manifest.record_generation(c, {"checkpoint": c, "path": f"samples/{c}.jsonl", "requested": 100, "existing": 0,
                                       "generated": 100, "tokens": 1000, "seconds": 1.0, "settings": "0" * 16,
                                       "engine": {"name": "transformers", "device": "cpu"}})
    RunDir(run_dir).write_manifest(manifest)
    verdicts = run_dir / "verdicts"
    verdicts.mkdir(exist_ok=True)
    statuses = ["passed", "failed", "timed out", "out of memory", "crashed", "sandbox error"]
    for j, name in enumerate(family.checkpoints):
        rows = [{"task_id": f"Sim/{i}", "checkpoint": name, "sample_index": i, "seed": i,
                 "passed": i % 3 == 0, "status": "passed" if i % 3 == 0 else statuses[1 + (i + j) % 5]}
                for i in range(30)]
        (verdicts / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run_dir


@pytest.fixture(scope="module")
def reported_run(tmp_path_factory) -> Path:
    run_dir = make_run(tmp_path_factory.mktemp("report") / "run")
    write_report(run_dir)
    return run_dir


def test_headline_states_forecast_interval_and_actual(reported_run):
    text = (reported_run / "report.md").read_text()
    headline = next(line for line in text.splitlines() if "Forecast for" in line)
    forecast = json.loads((reported_run / "forecast.json").read_text())
    assert "target" in headline and "mean log pass rate" in headline
    assert re.search(r"\[−?\d[\d.]*, −?\d[\d.]*\] \(90% forecast interval\)", headline)
    assert "actual" in headline and ("✓" in headline or "✗" in headline)
    assert f"over {len(forecast['problems'])} problems" in headline


def test_headline_is_the_first_thing_after_the_title(reported_run):
    lines = [line for line in (reported_run / "report.md").read_text().splitlines() if line.strip()]
    assert lines[0].startswith("# ") and "Forecast for" in lines[1]


def test_capability_figure_is_a_png(reported_run):
    png = reported_run / "figures" / "capability.png"
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert "figures/capability.png" in (reported_run / "report.md").read_text()


@pytest.mark.parametrize("table", ["Checkpoints", "Problem subset and exclusions", "Fitted parameters",
                                   "Forecast per difficulty bucket", "Execution outcomes per checkpoint",
                                   "Provenance"])
def test_report_has_table(reported_run, table):
    assert f"**{table}" in (reported_run / "report.md").read_text()


def test_checkpoint_table_pass_at_1_matches_counts(reported_run):
    from pipeline.records import read_pass_counts

    counts = [c for c in read_pass_counts(reported_run / "pass_counts.csv") if c.checkpoint == "sim-0"]
    expected = 100 * np.mean([c.passed / c.n for c in counts])
    row = next(line for line in (reported_run / "report.md").read_text().splitlines() if line.startswith("| sim-0 "))
    assert f"{expected:.1f}%" in row


def test_provenance_names_digests_and_sandbox(reported_run):
    text = (reported_run / "report.md").read_text()
    for needle in ("c0ffee", "beef", "abc1234", "bwrap", "memory_mb=1024", "transformers"):
        assert needle in text, needle


@pytest.mark.parametrize("error", ["no problem qualifies for the fit (none is solved at least once by every "
                                   "checkpoint)", "need at least 3 checkpoints below the target; got 1"])
def test_fit_error_is_stated_plainly(tmp_path, error):
    run_dir = make_run(tmp_path / "run", forecast=False)
    atomic_write_json(run_dir / "forecast.json", {"error": error, "target": {"name": "big", "compute": 1e23}})
    text = write_report(run_dir).read_text()
    assert "No capability forecast for big" in text and error in text
    assert not (run_dir / "figures" / "capability.png").exists()


def test_missing_forecast_is_stated_plainly(tmp_path):
    run_dir = make_run(tmp_path / "run", forecast=False)
    text = write_report(run_dir).read_text()
    assert "forecast.json is missing" in text and "**Checkpoints**" in text


def test_empty_run_directory_still_gets_a_report(tmp_path):
    text = write_report(tmp_path).read_text()
    assert "No capability forecast" in text and "manifest.json" in text


def test_missing_run_directory_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="run directory not found"):
        write_report(tmp_path / "nope")


@pytest.mark.parametrize("name,content,where", [
    ("forecast.json", '{"prediction": {"value": -0.4,}\n', "forecast.json, line 1"),
    ("loss.json", "[1, 2", "loss.json, line 1"),
    ("manifest.json", '"just a string"', "manifest.json, line 1: expected a JSON object"),
    ("pass_counts.csv", "checkpoint,compute,task_id,n,passed\nsmall,abc,T/0,10,1\n", "line 2: field 'compute'"),
])
def test_malformed_input_names_file_and_line(tmp_path, name, content, where):
    run_dir = make_run(tmp_path / "run")
    (run_dir / name).write_text(content)
    with pytest.raises(BadInput, match=re.escape(where)):
        write_report(run_dir)


def test_report_never_changes_the_results(tmp_path):
    run_dir = make_run(tmp_path / "run")

    def digests() -> dict[str, str]:
        return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in run_dir.rglob("*") if p.is_file()}

    before = digests()
    write_report(run_dir)
    after = digests()
    written = {k for k in after if k not in before}
    assert {k: after[k] for k in before} == before
    assert all(k in ("report.md", "report.html") or k.startswith("figures/") for k in written), written


def test_cli_report_exits_zero_and_prints_paths(tmp_path, capsys):
    from pipeline.cli import main

    run_dir = make_run(tmp_path / "run")
    assert main(["report", str(run_dir)]) == 0
    assert str(run_dir / "report.md") in capsys.readouterr().out


def test_cli_report_on_missing_dir_exits_2(tmp_path, capsys):
    from pipeline.cli import main

    assert main(["report", str(tmp_path / "absent")]) == 2
    assert "run directory not found" in capsys.readouterr().err


def test_pass_at_k_interval_covers_the_population_mean():
    from pipeline.report.tables import pass_at_k_with_interval

    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(200):
        p = rng.beta(0.6, 1.2, size=40)              # population mean pass rate 1/3
        passed = rng.binomial(20, p)
        _, (lo, hi) = pass_at_k_with_interval(np.full(40, 20), passed, 1, level=0.9, reps=400,
                                              seed=int(rng.integers(1 << 30)))
        hits += lo <= 1 / 3 <= hi
    assert 0.82 <= hits / 200 <= 0.97


@pytest.mark.parametrize("k", [10, 100])
def test_pass_at_k_is_absent_when_fewer_samples_than_k(k):
    from pipeline.report.tables import pass_at_k_with_interval

    assert pass_at_k_with_interval(np.full(5, 8), np.full(5, 3), k, level=0.9) is None


def test_problems_falling_with_scale_are_listed(tmp_path):
    run_dir = make_run(tmp_path / "run")
    forecast = json.loads((run_dir / "forecast.json").read_text())
    forecast["non_monotone"] = ["Sim/1", "Sim/4"]
    atomic_write_json(run_dir / "forecast.json", forecast)
    row = next(line for line in write_report(run_dir).read_text().splitlines() if "falls with scale" in line)
    assert "| 2 |" in row and "Sim/1, Sim/4" in row


@pytest.mark.parametrize("field,value", [
    ("points", "not a list"), ("points", [None, {"checkpoint": "x"}, {"normalized_compute": -1}]),
    ("buckets", {"1": "x"}), ("buckets", [{"problems": None, "prediction": "high"}]),
    ("alpha", "big"), ("k", None), ("curve", [{"normalized_compute": "a"}]), ("curve", {"x": [1, 2]}),
    ("excluded", {"problems": ["Sim/1"], "models": [{"id": "m", "reason": "r"}]}), ("excluded", "all"),
    ("non_monotone", [{"task_id": "Sim/2"}]), ("actual", {"value": None}), ("actual", 7),
    ("law", {"problem_k": [1], "problem_log_lambda_at_target": [0.0, 1.0]}), ("alternatives", ["x"]),
    ("prediction", {"value": None, "interval": None}), ("target", "just-a-name"), ("surprise", 1),
    ("prediction", None),
])
def test_drifted_forecast_fields_are_errors_naming_the_file_and_field(reported_run, tmp_path, field, value):
    """Producer and reader live here: a field that drifted is an error, never a silent fallback."""
    run_dir = tmp_path / "run"
    shutil.copytree(reported_run, run_dir)
    forecast = json.loads((run_dir / "forecast.json").read_text())
    if value is None and field == "prediction":
        del forecast[field]
    else:
        forecast[field] = value
    atomic_write_json(run_dir / "forecast.json", forecast)
    with pytest.raises(BadInput, match=re.escape(f"forecast.json, field {field}")):
        write_report(run_dir)


def test_target_that_solves_nothing_is_not_called_unmeasured(tmp_path):
    run_dir = make_run(tmp_path / "run")
    forecast = json.loads((run_dir / "forecast.json").read_text())
    forecast["actual"] = {"value": None, "n_problems": 0, "unsolved_by_target": forecast["problems"],
                          "note": "the target solves none of the fit problems at its sample budget"}
    atomic_write_json(run_dir / "forecast.json", forecast)
    headline = next(line for line in write_report(run_dir).read_text().splitlines() if "Forecast for" in line)
    assert "no actual value: the target solves none of the fit problems" in headline
    assert "not yet measured" not in headline


def test_evidence_line_names_checkpoints_compute_problems_and_samples(reported_run):
    line = next(x for x in (reported_run / "report.md").read_text().splitlines() if "**Evidence:**" in x)
    forecast = json.loads((reported_run / "forecast.json").read_text())
    assert f"{len(forecast['models'])} checkpoints in the fit" in line
    assert f"{len(forecast['problems'])} of 40 problems qualify" in line
    assert "100 samples per problem per checkpoint" in line and "decades of compute" in line
