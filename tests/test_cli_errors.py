"""Issue 14, "crashes and silent successes": one paragraph naming the path or option, exit 2, no traceback."""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.cli import main
from simulated.family import FamilySpec, TARGET_NAME, sample_counts, simulate_family
from simulated.runs import write_sim_manifest
from pipeline.records import write_pass_counts

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "checkpoints.yaml"


def one_paragraph(err: str, *words: str) -> None:
    assert "Traceback" not in err and err.strip() and "\n\n" not in err.strip(), err
    for word in words:
        assert word in err, (word, err)


@contextlib.contextmanager
def read_only(path: Path):
    """A folder nobody may write in: mode 0555, or for root (who ignores modes) the immutable attribute."""
    if os.geteuid() == 0:
        if not shutil.which("chattr") or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
            pytest.skip("running as root on a file system without chattr +i")
        try:
            yield path
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)


@pytest.fixture(scope="module")
def counts():
    fam = simulate_family(FamilySpec(n_problems=20, n_checkpoints=4, difficulty_median=0.8), seed=5)
    return fam, sample_counts(fam, n=40, rng=np.random.default_rng(2))


@pytest.fixture
def run(tmp_path, counts):
    fam, rows = counts
    run = tmp_path / "run"
    (run / "verdicts").mkdir(parents=True)
    write_sim_manifest(run, fam, fit={"bootstrap": 20, "buckets": 2})
    write_pass_counts(run / "pass_counts.csv", [c for c in rows if c.checkpoint != TARGET_NAME])
    (run / "verdicts" / f"{fam.checkpoints[0]}.jsonl").write_text('{"task_id": "Sim/0", "passed": true}\n')
    return run


@pytest.mark.parametrize("argv", [
    ["run", "--config", str(CONFIG), "--out", "{file}"],
    ["run", "{file}", "--config", str(CONFIG)],
    ["generate", "--config", str(CONFIG), "--out", "{file}"],
])
def test_out_that_is_a_file(tmp_path, capsys, argv):
    file = tmp_path / "a-file"
    file.write_text("x")
    assert main([a.format(file=file) for a in argv]) == 2
    one_paragraph(capsys.readouterr().err, str(file), "is a file")


def test_execute_out_that_is_a_directory(tmp_path, capsys):
    samples = tmp_path / "s.jsonl"
    samples.write_text('{"task_id": "HumanEval/0", "completion": "    return True\\n"}\n')
    assert main(["execute", "--samples", str(samples), "--out", str(tmp_path)]) == 2
    one_paragraph(capsys.readouterr().err, str(tmp_path), "is a directory")


@pytest.mark.parametrize("command", ["report", "count", "fit", "backtest", "score"])
def test_read_only_run_directory(run, capsys, command):
    if command == "score":
        assert main(["forecast", str(run)]) == 0
        capsys.readouterr()
    target = run / "forecasts" if command == "score" else run
    with read_only(target):
        assert main([command, str(run)]) == 2
    one_paragraph(capsys.readouterr().err, str(target), "cannot write")


def test_read_only_parent_of_a_new_run_directory(tmp_path, capsys):
    parent = tmp_path / "ro"
    parent.mkdir()
    with read_only(parent):
        assert main(["run", "--config", str(CONFIG), str(parent / "new")]) == 2
    one_paragraph(capsys.readouterr().err, str(parent / "new"))


@pytest.mark.parametrize("argv,option", [
    (["fit", "RUN", "--bootstrap", "0"], "--bootstrap"),
    (["fit", "RUN", "--bootstrap", "-5"], "--bootstrap"),
    (["backtest", "RUN", "--bootstrap", "0"], "--bootstrap"),
    (["fit", "RUN", "--max-fit-compute-fraction", "0"], "--max-fit-compute-fraction"),
    (["fit", "RUN", "--max-fit-compute-fraction", "1.5"], "--max-fit-compute-fraction"),
    (["loss", "RUN", "--max-fit-compute-fraction", "0"], "--max-fit-compute-fraction"),
    (["execute", "--samples", "s.jsonl", "--out", "v.jsonl", "--workers", "0"], "--workers"),
    (["run", "--limit", "0"], "--limit"),
])
def test_bad_numbers_are_usage_errors(capsys, argv, option):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    one_paragraph(capsys.readouterr().err.splitlines()[-1], option, "must be")


def test_report_on_a_file(tmp_path, capsys):
    file = tmp_path / "report.md"
    file.write_text("x")
    assert main(["report", str(file)]) == 2
    one_paragraph(capsys.readouterr().err, str(file), "is a file")


def _config(tmp_path: Path, **changes) -> Path:
    family = yaml.safe_load(CONFIG.read_text())["families"]["reference"]
    for dotted, value in changes.items():
        holder = family
        *keys, last = dotted.split("__")
        for key in keys:
            holder = holder.setdefault(key, {})
        holder[last] = value
    for ckpt in family["checkpoints"]:
        ckpt["model"] = str(ROOT / ckpt["model"])
    family["benchmark"] = str(ROOT / family["benchmark"])
    family["loss"]["corpus"] = str(ROOT / family["loss"]["corpus"])
    path = tmp_path / "checkpoints.yaml"
    path.write_text(yaml.safe_dump({"families": {"reference": family}}, sort_keys=False))
    return path


@pytest.mark.parametrize("changes,words", [
    ({"fit__method": "magic"}, ["field families.reference.fit.method", "unknown fit method 'magic'"]),
    ({"sandbox__backend": "chroot"}, ["field families.reference.sandbox.backend", "unknown sandbox backend"]),
    ({"fit__bootstrap": 0}, ["field families.reference.fit.bootstrap"]),
    ({"fit__max_fit_compute_fraction": 0.01}, ["field families.reference.target", "at least 3 checkpoints"]),
    ({"target": {"compute": 1e9, "name": "small"}}, ["field families.reference.target", "not above any checkpoint"]),
])
def test_semantic_config_errors_before_any_compute(tmp_path, capsys, changes, words):
    out = tmp_path / "out"
    assert main(["run", "--config", str(_config(tmp_path, **changes)), str(out)]) == 2
    one_paragraph(capsys.readouterr().err, str(tmp_path / "checkpoints.yaml"), "line ", *words)
    assert not out.exists()


@pytest.mark.parametrize("method", ["default", "aggregate", "per-problem", "sigmoid", "stacked"])
def test_every_fit_method_is_accepted_before_any_compute(method):
    from pipeline.config import load_config
    from pipeline.run import check_forecastable

    config = load_config(CONFIG)
    family = config.family("reference")
    check_forecastable(config, family.model_copy(update={"fit": family.fit.model_copy(update={"method": method})}))


def test_passuntil_says_why_there_is_no_prediction(tmp_path, capsys):
    csv = tmp_path / "cells.csv"
    csv.write_text("checkpoint,compute,task_id,n,passed,r,draws\nsmall,1e18,T/0,3,1,1,3\n")
    assert main(["passuntil", "--pass-counts", str(csv)]) == 0
    err = capsys.readouterr().err
    assert "no PassUntil prediction: need the target's compute" in err and "null" not in err


def test_reference_train_never_defaults_to_the_shipped_models(capsys):
    from pipeline.reference.cli import FAMILY_DIR

    with pytest.raises(SystemExit):
        main(["reference", "train"])                       # --out is required
    assert "--out" in capsys.readouterr().err
    assert main(["reference", "train", "--out", str(FAMILY_DIR), "--tiny"]) == 2
    one_paragraph(capsys.readouterr().err, "--replace-shipped")


def test_resume_refusal_names_the_field_that_differs(tmp_path, capsys):
    from pipeline.config import load_config
    from pipeline.problems import load_problems, resolve_benchmark
    from pipeline.rundir import RunDir
    from pipeline.run import start_manifest

    family = load_config(CONFIG).family("reference")
    benchmark = resolve_benchmark(family.benchmark, family.base_dir)
    (tmp_path / "r").mkdir()
    start_manifest(RunDir(tmp_path / "r"), CONFIG, family, load_problems(benchmark), benchmark)
    assert main(["run", "--config", str(_config(tmp_path, sampling__n=7)), str(tmp_path / "r")]) == 2
    one_paragraph(capsys.readouterr().err, "sampling.n: 20 -> 7")
