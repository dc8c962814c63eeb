"""The run directory as types: a run directory written by an earlier release opens, is upgraded and reads
strictly, and the report and summary made from it say what that release's own said."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from pipeline.errors import UserError
from pipeline.rundir import RunDir
from pipeline.rundir.manifest import VERSION, upgrade
from pipeline.rundir.results import read_backtest, read_forecast, read_loss, read_registration, read_scores

# `capforecast run --limit 12` (the reference family) made by main at 5088b7d, before manifests had a version;
# samples, verdicts and figures left out to keep it small. report.md and summary.txt are what that release said.
MAIN_5088B7D = Path(__file__).resolve().parent / "fixtures" / "run-main-5088b7d"


@pytest.fixture
def old_run(tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(MAIN_5088B7D, run)
    return run


def test_a_manifest_from_before_versions_is_upgraded_and_opens():
    raw = json.loads((MAIN_5088B7D / "manifest.json").read_text())
    assert "version" not in raw
    manifest = RunDir(MAIN_5088B7D).read_manifest()
    assert manifest.version == VERSION and manifest.family == "reference" and manifest.target.name == "ref-714k"
    assert manifest.run_family().fit.max_fit_compute_fraction == 0.2 and len(manifest.generation) == 6


def test_a_manifest_from_a_newer_release_is_refused_by_name(tmp_path):
    raw = json.loads((MAIN_5088B7D / "manifest.json").read_text())
    with pytest.raises(UserError, match="field 'version' is 99"):
        upgrade({**raw, "version": 99}, tmp_path / "manifest.json")


def test_writing_and_reading_back_keeps_the_manifest(old_run):
    run = RunDir(old_run)
    manifest = run.read_manifest()
    run.write_manifest(manifest)
    assert run.read_manifest() == manifest
    assert json.loads(run.manifest.read_text())["version"] == VERSION


@pytest.mark.parametrize("read, name", [(read_forecast, "forecast.json"), (read_backtest, "backtest.json"),
                                        (read_loss, "loss.json")])
def test_every_result_of_the_earlier_release_reads_strictly(read, name):
    assert read(MAIN_5088B7D / name) == json.loads((MAIN_5088B7D / name).read_text())


def test_registered_forecasts_and_scores_of_the_earlier_release_read_strictly():
    run = RunDir(MAIN_5088B7D)
    (record,) = run.registered()
    assert read_registration(record)["target"]["name"] == "ref-714k"
    assert read_scores(run.scores)["scores"][0]["file"] == record.name


@pytest.mark.parametrize("name, change, message", [
    ("manifest.json", {"surprise": 1}, "field surprise: unknown field"),
    ("manifest.json", {"family_config": None}, "field family_config:"),
    ("loss.json", {"a": "big"}, "field a: Input should be a valid number"),
    ("backtest.json", {"rows": [{"target": "x"}]}, "field rows[0].holdout: required field is missing"),
])
def test_an_unknown_or_mistyped_field_is_an_error_naming_file_and_field(old_run, name, change, message):
    path = old_run / name
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    read = {"manifest.json": lambda p: RunDir(p.parent).read_manifest(), "loss.json": read_loss,
            "backtest.json": read_backtest}[name]
    with pytest.raises(UserError, match=re.escape(f"{path}, {message}")):
        read(path)


def test_the_report_says_what_the_earlier_release_said(old_run):
    """Headline, checkpoints, parameters, buckets, backtest and registrations: the same words and numbers."""
    from pipeline.report.stage import write_report

    before = [line for line in (MAIN_5088B7D / "report.md").read_text().splitlines() if line.startswith(("> **", "| "))]
    after = set(write_report(old_run, html=False).read_text().splitlines())
    assert len(before) > 40
    assert [line for line in before if line not in after and not _depends_on_what_is_left_out(line)] == []


def _depends_on_what_is_left_out(line: str) -> bool:
    """Provenance rows (this checkout's code and packages) and execution outcomes (verdicts are not in the fixture)."""
    cells = [c.strip() for c in line.strip("|").split("|")]
    provenance = {"item", "family", "created (UTC)", "config digest (sha256)", "config file", "problem-set digest "
                  "(sha256)", "problems", "problem file", "code version", "generation engine", "generated this run",
                  "sandbox backend", "sandbox limits", "calibrated CPU limits", "packages", "stage time", "base_dir"}
    outcomes = len(cells) == 8 and all(c.isdigit() for c in cells[1:])   # checkpoint, six statuses, total
    return cells[0] in provenance or outcomes or cells[0] == "checkpoint" and "crashed" in line


def test_the_summary_says_what_the_earlier_release_said(old_run):
    from pipeline.summary import format_summary, run_summary

    before = (MAIN_5088B7D / "summary.txt").read_text().splitlines()
    after = format_summary(run_summary(old_run)).splitlines()
    same = lambda lines: [line for line in lines[1:-1] if not line.startswith("backtest  ")]   # noqa: E731
    assert same(after) == same(before)   # the backtest line now gives the report's median |error| (issue 25)
    assert "median |error|" in next(line for line in after if line.startswith("backtest  "))
