"""Issue 14, "results that are wrong or lost": each property through the real CLI (pipeline.cli.main)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from simulated.family import FamilySpec, TARGET_NAME, sample_counts, simulate_family
from simulated.runs import write_sim_manifest
from pipeline.records import write_pass_counts

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def family():
    """Five checkpoints from 1/200 to 1/2 of the target's compute, and the target's own counts."""
    fam = simulate_family(FamilySpec(n_problems=30, n_checkpoints=5, target_factor=2.0, difficulty_median=0.8), seed=3)
    return fam, sample_counts(fam, n=50, rng=np.random.default_rng(1))


def make_run(tmp_path: Path, fam, counts, fit: dict, with_target: bool = False) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    write_sim_manifest(run, fam, fit=fit, sampling={"n": 50})
    write_pass_counts(run / "pass_counts.csv", [c for c in counts if with_target or c.checkpoint != TARGET_NAME])
    return run


FIT = {"max_fit_compute_fraction": 0.2, "bootstrap": 20, "buckets": 2, "level": 0.9}


def test_fit_on_a_run_directory_keeps_its_compute_limit(tmp_path, family):
    run = make_run(tmp_path, *family, fit=FIT)
    assert main(["fit", str(run)]) == 0
    forecast = json.loads((run / "forecast.json").read_text())
    largest = family[0].checkpoints[-1]                   # at 1/2 of the target: outside the 0.2 limit
    assert largest not in forecast["models"] and forecast["options"]["max_fit_compute_fraction"] == 0.2
    assert forecast["settings_source"]["max_fit_compute_fraction"] == "run directory (manifest.json)"


def test_fit_option_on_the_command_line_overrides_the_run_and_says_so(tmp_path, family):
    run = make_run(tmp_path, *family, fit=FIT)
    assert main(["fit", str(run), "--max-fit-compute-fraction", "1"]) == 0
    forecast = json.loads((run / "forecast.json").read_text())
    assert family[0].checkpoints[-1] in forecast["models"]
    assert forecast["settings_source"]["max_fit_compute_fraction"] == "command line"
    assert forecast["settings_source"]["bootstrap"] == "run directory (manifest.json)"


def test_fit_on_a_run_directory_forecasts_the_runs_target(tmp_path, family):
    run = make_run(tmp_path, *family, fit=FIT)
    assert main(["fit", str(run)]) == 0
    forecast = json.loads((run / "forecast.json").read_text())
    assert forecast["target"] == {"name": TARGET_NAME, "compute": family[0].target_compute}


def test_backtest_on_a_run_directory_uses_its_settings(tmp_path, family):
    run = make_run(tmp_path, *family, fit={**FIT, "level": 0.8})
    assert main(["backtest", str(run), "--method", "aggregate"]) == 0
    result = json.loads((run / "backtest.json").read_text())
    assert result["options"]["level"] == 0.8 and result["options"]["bootstrap"] == 20
    assert result["settings_source"]["level"] == "run directory (manifest.json)"


def test_forecast_registration_and_backtest_of_a_run_use_the_same_options(tmp_path, family):
    """One options object per run: forecast.json, the registered record and the backtest agree on every setting
    (the backtest alone holds out checkpoints instead of a compute limit, and skips the alternative methods)."""
    run = make_run(tmp_path, *family, fit=FIT)
    assert main(["forecast", str(run)]) == 0
    assert main(["fit", str(run)]) == 0
    assert main(["backtest", str(run), "--max-holdout", "1"]) == 0
    fitted = json.loads((run / "forecast.json").read_text())["options"]
    registered = json.loads(next((run / "forecasts").glob("*.json")).read_text())["forecast"]["options"]
    backtested = json.loads((run / "backtest.json").read_text())["options"]
    assert registered == fitted
    assert backtested == {**fitted, "max_fit_compute_fraction": None, "alternatives": False}


def test_a_registered_forecast_says_what_the_runs_sample_budget_will_measure(tmp_path, family):
    run = make_run(tmp_path, *family, fit=FIT)          # sampling.n = 50: the target will be measured with 50
    assert main(["forecast", str(run)]) == 0
    record = json.loads(next((run / "forecasts").glob("*.json")).read_text())
    assert record["forecast"]["options"]["target_n"] == 50
    prediction = record["forecast"]["prediction"]
    assert prediction["measurement_n"] == 50 and len(prediction["measurement_interval"]) == 2


def test_duplicate_pass_count_rows_are_an_error(tmp_path, family, capsys):
    run = make_run(tmp_path, *family, fit=FIT)
    lines = (run / "pass_counts.csv").read_text().splitlines()
    (run / "pass_counts.csv").write_text("\n".join(lines + [lines[3]]) + "\n")
    assert main(["fit", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"line {len(lines) + 1}" in err and "duplicate" in err and "line 4" in err
    assert not (run / "forecast.json").exists()


def test_forecast_refuses_once_the_target_has_data(tmp_path, family, capsys):
    run = make_run(tmp_path, *family, fit=FIT, with_target=True)
    assert main(["forecast", str(run)]) == 2
    err = capsys.readouterr().err
    assert "--force" in err and "not be a pre-registration" in err and "Traceback" not in err
    assert not (run / "forecasts").exists()


def test_forecast_with_force_registers_and_warns(tmp_path, family, capsys):
    run = make_run(tmp_path, *family, fit=FIT, with_target=True)
    assert main(["forecast", str(run), "--force"]) == 0
    assert "not a pre-registration" in capsys.readouterr().err
    assert len(list((run / "forecasts").glob("*.json"))) == 1


def test_score_prints_plain_sentences_not_a_python_dict(tmp_path, family, capsys):
    run = make_run(tmp_path, *family, fit=FIT, with_target=True)
    assert main(["forecast", str(run), "--force"]) == 0
    capsys.readouterr()
    assert main(["score", str(run)]) == 0
    out = capsys.readouterr().out
    assert "{" not in out and "'none'" not in out
    assert "NOT a pre-registration" in out and "(30 pass-count rows)" in out


def test_report_claims_registration_only_for_the_registered_numbers(tmp_path, family):
    fam, counts = family
    run = make_run(tmp_path, fam, counts, fit=FIT)
    assert main(["forecast", str(run)]) == 0
    write_pass_counts(run / "pass_counts.csv", counts)
    assert main(["score", str(run)]) == 0
    assert main(["fit", str(run), "--max-fit-compute-fraction", "1", "--bootstrap", "20"]) == 0  # a different fit
    assert main(["report", str(run), "--no-html"]) == 0
    headline = next(line for line in (run / "report.md").read_text().splitlines() if "Forecast for" in line)
    assert "This forecast was **not** registered" in headline
    assert ", before the target's samples existed" in headline   # said of the registered record's numbers


def test_report_keeps_the_registration_claim_when_the_numbers_match(tmp_path, family):
    fam, counts = family
    run = make_run(tmp_path, fam, counts, fit=FIT)
    assert main(["forecast", str(run)]) == 0
    record = json.loads(next((run / "forecasts").glob("*.json")).read_text())
    (run / "forecast.json").write_text(json.dumps(record["forecast"]))
    write_pass_counts(run / "pass_counts.csv", counts)
    assert main(["score", str(run)]) == 0
    assert main(["report", str(run), "--no-html"]) == 0
    headline = next(line for line in (run / "report.md").read_text().splitlines() if "Forecast for" in line)
    assert "before the target's samples existed" in headline and "not** registered" not in headline


def test_report_figure_links_resolve_from_the_report_with_a_relative_run_dir(tmp_path, family, monkeypatch):
    make_run(tmp_path, *family, fit=FIT)
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "run"]) == 0
    assert main(["report", "run", "--no-html"]) == 0
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (tmp_path / "run" / "report.md").read_text())
    assert links and all((tmp_path / "run" / link).is_file() for link in links)


def test_torn_last_line_is_skipped_with_a_warning(tmp_path, capsys):
    from pipeline.records import read_jsonl

    path = tmp_path / "verdicts.jsonl"
    path.write_text('{"task_id": "a"}\n{"task_id": "b"}\n{"task_')
    assert [row["task_id"] for _, row in read_jsonl(path)] == ["a", "b"]
    err = capsys.readouterr().err
    assert "line 3" in err and "skipped 1 torn last line" in err


def _loss_run(tmp_path: Path, fam, fit: dict, loss: dict) -> Path:
    run = tmp_path / "lossrun"
    write_sim_manifest(run, fam, fit=fit, loss=loss, model=str(tmp_path / "no-such-model"))
    return run


def test_loss_without_a_corpus_fits_no_law_and_says_why(tmp_path, family, capsys):
    run = _loss_run(tmp_path, family[0], fit={}, loss={})
    assert main(["loss", str(run)]) == 2
    err = capsys.readouterr().err
    assert "no held-out corpus" in err and "loss.corpus" in err and "Traceback" not in err
    assert not (run / "loss.json").exists()


def test_loss_on_a_run_directory_keeps_its_compute_limit(tmp_path, family, capsys):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"text": "x = 1\\n"}\n')
    run = _loss_run(tmp_path, family[0], fit={"max_fit_compute_fraction": 0.03}, loss={"corpus": str(corpus)})
    assert main(["loss", str(run)]) == 2   # only sim-0 and sim-1 are within 3% of the target: refused before loading
    assert "usable: sim-0, sim-1" in capsys.readouterr().err


def test_packaged_config_is_used_outside_the_checkout(tmp_path, monkeypatch):
    from pipeline.config import PACKAGED_CONFIG, load_config

    monkeypatch.chdir(tmp_path)
    config = load_config()
    assert Path(config.path) == PACKAGED_CONFIG
    family = config.family()
    assert all(Path(family.model_location(c)).is_dir() for c in family.checkpoints)
    assert family.resolve_path(family.loss.corpus).is_file() and family.resolve_path(family.benchmark).is_file()


@pytest.mark.parametrize("name", ["reference", "reference-full"])
def test_packaged_reference_family_is_the_checkouts(name):
    from pipeline.config import PACKAGED_CONFIG, load_config

    mine, shipped = (load_config(p).family(name) for p in (ROOT / "checkpoints.yaml", PACKAGED_CONFIG))
    resolved = lambda f: (f.model_dump(exclude={"checkpoints", "benchmark", "loss"}),  # noqa: E731
                          [f.model_location(c) for c in f.checkpoints], [c.compute for c in f.checkpoints],
                          f.resolve_path(f.benchmark).resolve(), f.resolve_path(f.loss.corpus).resolve())
    assert resolved(mine) == resolved(shipped)


def test_manifest_paths_resolve_from_any_directory(tmp_path, monkeypatch):
    from pipeline.config import load_config
    from pipeline.problems import load_problems, resolve_benchmark
    from pipeline.run import start_manifest
    from pipeline.rundir import RunDir

    monkeypatch.chdir(ROOT)
    family = load_config("checkpoints.yaml").family("reference")
    benchmark = resolve_benchmark(family.benchmark, family.base_dir)
    manifest = start_manifest(RunDir(tmp_path), Path("checkpoints.yaml"), family, load_problems(benchmark), benchmark)
    for path in (manifest.config_path, manifest.base_dir, manifest.problems.path):
        assert Path(path).is_absolute() and Path(path).exists()


def test_atlas_labels_are_spread_apart():
    from pipeline.report.figures_atlas import spread

    ys = [0.5, 0.51, 0.5, 0.99, 1.0, 0.0]
    placed = spread(ys, gap=0.045, lo=0.0, hi=1.0)
    ordered = sorted(placed)
    assert all(b - a >= 0.045 - 1e-12 for a, b in zip(ordered, ordered[1:]))
    assert all(0.0 <= y <= 1.0 for y in placed) and max(abs(p - y) for p, y in zip(placed, ys)) < 0.1


def test_plural_in_report_text():
    from pipeline.report.document import plural

    assert (plural(1, "problem"), plural(2, "problem"), plural(0, "problem")) == ("1 problem", "2 problems",
                                                                                  "0 problems")


def test_points_without_intervals_get_no_error_bars_in_the_legend():
    from matplotlib.container import ErrorbarContainer

    from pipeline.report.figures import _draw_capability
    from pipeline.report.style import pyplot

    fig, ax = pyplot().subplots()
    panel = {"points": [{"checkpoint": "a", "normalized_compute": 0.01, "mean_log_pass_rate": -1.0, "used_in_fit": True},
                        {"checkpoint": "b", "normalized_compute": 0.1, "mean_log_pass_rate": -0.5, "used_in_fit": True}],
             "prediction": {"value": -0.2, "interval": [-0.3, -0.1], "level": 0.9}}
    assert _draw_capability(ax, panel, "bucket 1: 2 problems")
    handles, labels = ax.get_legend_handles_labels()
    point = handles[labels.index("checkpoints (fit)")]
    assert not isinstance(point, ErrorbarContainer)


def test_outcomes_note_says_sandbox_errors_are_left_out_of_n():
    from pipeline.report.inputs import RunInputs
    from pipeline.report.tables import status_table

    note = status_table(RunInputs(Path("."), statuses={"a": {"passed": 3, "sandbox error": 1}})).note
    assert "left out of n" in note and "Anything but" not in note
