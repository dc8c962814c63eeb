"""Issue 25: a run directory you can always return to, one writer per run directory, finished stages that do no
work and keep their recorded times, a sandbox backend pinned at the run's first execute."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import pipeline.run as run_module
from pipeline.cli import main
from pipeline.config import load_config
from pipeline.errors import InfrastructureError
from pipeline.execute import ExecuteSummary
from pipeline.rundir import RunDir
from pipeline.rundir.manifest import Manifest, ProblemSet, SandboxRecord
from sandbox.api import SandboxUnavailable

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "checkpoints.yaml"


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def no_stages(monkeypatch):
    """run's stages replaced by a recorder: what the run directory logic does, without any compute."""
    calls = []
    monkeypatch.setattr(run_module, "_stages", lambda run, *args: calls.append(run.path))
    return calls


def run_dirs(root: Path) -> list[Path]:
    return sorted((root / "results").iterdir())


def test_interrupted_run_prints_the_directory_to_pass_back(in_tmp, monkeypatch, capsys):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "_stages", interrupted)
    assert main(["run", "--config", str(CONFIG)]) == 130
    (made,) = run_dirs(in_tmp)
    assert f"resume with `capforecast run {made.relative_to(in_tmp)}`" in capsys.readouterr().err


def test_run_without_a_directory_resumes_the_latest_unfinished_run_and_says_so(in_tmp, no_stages, capsys):
    assert main(["run", "--config", str(CONFIG), "--json"]) in (0, 1)
    first = no_stages[-1]
    assert main(["run", "--config", str(CONFIG), "--json"]) in (0, 1)
    assert no_stages[-1] == first and len(run_dirs(in_tmp)) == 1
    assert f"resuming {first}: the latest unfinished run of this config and family" in capsys.readouterr().err


def test_new_starts_a_fresh_run_directory(in_tmp, no_stages):
    main(["run", "--config", str(CONFIG), "--json"])
    import time

    time.sleep(1.1)                                   # the directory name has a one-second timestamp
    main(["run", "--config", str(CONFIG), "--new", "--json"])
    assert len(set(no_stages)) == 2 and len(run_dirs(in_tmp)) == 2


def test_a_finished_run_is_not_resumed(in_tmp, no_stages):
    main(["run", "--config", str(CONFIG), "--json"])
    run = RunDir(no_stages[-1])
    manifest = run.read_manifest()
    manifest.record_stage("report", 1.0)
    run.write_manifest(manifest)
    import time

    time.sleep(1.1)
    main(["run", "--config", str(CONFIG), "--json"])
    assert no_stages[-1] != no_stages[0]


def test_a_run_of_another_config_is_not_resumed(in_tmp, no_stages, tmp_path):
    import time

    import yaml

    main(["run", "--config", str(CONFIG), "--json"])
    family = yaml.safe_load(CONFIG.read_text())["families"]["reference"]
    family["fit"]["bootstrap"] = 123
    for ckpt in family["checkpoints"]:
        ckpt["model"] = str(ROOT / ckpt["model"])
    family["benchmark"], family["loss"]["corpus"] = (str(ROOT / family["benchmark"]),
                                                     str(ROOT / family["loss"]["corpus"]))
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"families": {"reference": family}}))
    time.sleep(1.1)                                   # the directory name has a one-second timestamp
    main(["run", "--config", str(other), "--json"])
    assert len(no_stages) == 2 and no_stages[0] != no_stages[1]


def test_second_run_on_one_directory_is_refused_at_once_with_the_holders_pid(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    hold = ("import sys, time; from pipeline.lock import WriterLock; WriterLock(sys.argv[1]).acquire(); "
            "print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", hold, str(run_dir)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        assert main(["run", str(run_dir), "--config", str(CONFIG)]) == 2
        err = capsys.readouterr().err
        assert f"run directory {run_dir}: another capforecast process writes here: pid {proc.pid}" in err
        assert not (run_dir / "manifest.json").exists()
    finally:
        proc.kill()
        proc.wait()


# ------------------------------------------------------------------ stages that find their work done

@pytest.fixture
def started(tmp_path):
    config = load_config(CONFIG)
    family = config.family(None)
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    manifest = Manifest.start(family, CONFIG, ProblemSet(path="suite", digest="d" * 64, count=164))
    run.write_manifest(manifest)
    return run, family, manifest


def test_a_stage_with_the_same_inputs_does_no_work_and_keeps_its_time(started):
    run, _, manifest = started
    calls = []
    work = lambda: calls.append(1) or run.forecast.write_text("{}")   # noqa: E731
    from pipeline.rundir.resume import SKIPPED, run_stage

    said = []
    run_stage(manifest, run, "fit", "digest-1", run.forecast, work, log=said.append)
    recorded = manifest.stages["fit"]
    assert run_stage(manifest, run, "fit", "digest-1", run.forecast, work, log=said.append) is SKIPPED
    assert calls == [1] and run.read_manifest().stages["fit"] == recorded and "nothing to do" in said[-1]
    run_stage(manifest, run, "fit", "digest-2", run.forecast, work, log=said.append)   # new inputs: done again
    assert calls == [1, 1] and manifest.stages["fit"].inputs == "digest-2"


def test_the_loss_law_is_not_refitted_on_the_same_config_and_corpus(started, monkeypatch):
    import pipeline.forecast.loss as loss

    run, family, manifest = started
    calls = []
    monkeypatch.setattr(loss, "measure_and_fit_loss", lambda fam, path: calls.append(path) or run.loss.write_text("{}"))
    run_module.loss_stage(run, family, manifest)
    run_module.loss_stage(run, family, manifest)
    assert len(calls) == 1 and manifest.stages["loss"].inputs


def test_a_no_op_generate_or_execute_keeps_the_recorded_times(started, monkeypatch):
    import pipeline.execute as execute
    import pipeline.generate.stage as generate

    run, family, manifest = started
    ckpt = family.checkpoints[0]
    manifest.record_stage(f"generate:{ckpt.name}", 42.0)
    manifest.record_stage(f"execute:{ckpt.name}", 17.0)
    manifest.record_generation(ckpt.name, {"checkpoint": ckpt.name, "path": "x", "requested": 3, "existing": 0,
                                           "generated": 3, "tokens": 9, "seconds": 42.0, "settings": "s",
                                           "engine": {"name": "transformers"}})
    monkeypatch.setattr(generate, "generate_checkpoint", lambda *a, **k: {
        "checkpoint": ckpt.name, "path": "x", "requested": 3, "existing": 3, "generated": 0, "tokens": 0,
        "seconds": 0.1, "settings": "s", "engine": {"name": "transformers"}})
    monkeypatch.setattr(execute, "execute_samples", lambda *a, **k: ExecuteSummary(samples=3, already_done=3))
    run_module.sample_and_judge(run, family, ckpt, {}, manifest)
    stages = run.read_manifest().stages
    assert stages[f"generate:{ckpt.name}"].seconds == 42.0 and stages[f"execute:{ckpt.name}"].seconds == 17.0
    assert run.read_manifest().generation[ckpt.name].seconds == 42.0


# ------------------------------------------------------------------ the sandbox pinned at the first execute

def test_later_executes_use_the_backend_of_the_first(started, monkeypatch):
    import pipeline.execute as execute
    import pipeline.generate.stage as generate

    run, family, manifest = started
    assert family.sandbox.backend == "auto"
    manifest.sandbox = SandboxRecord(backend="docker", version="docker 26.1.5", limits={}, calibration_rule="r")
    used = []
    monkeypatch.setattr(generate, "generate_checkpoint", lambda *a, **k: {
        "checkpoint": "c", "path": "x", "requested": 0, "existing": 0, "generated": 0, "tokens": 0, "seconds": 0.0,
        "settings": "s", "engine": {}})
    monkeypatch.setattr(execute, "execute_samples",
                        lambda samples, verdicts, problems, options: used.append(options.sandbox) or ExecuteSummary())
    run_module.sample_and_judge(run, family, family.checkpoints[0], {}, manifest)
    assert used == ["docker"]


def test_a_pinned_backend_that_is_gone_is_refused_with_the_reason(started, monkeypatch):
    import pipeline.execute as execute
    import pipeline.generate.stage as generate

    run, family, manifest = started
    manifest.sandbox = SandboxRecord(backend="docker", version="docker 26.1.5", limits={}, calibration_rule="r")
    monkeypatch.setattr(generate, "generate_checkpoint", lambda *a, **k: {
        "checkpoint": "c", "path": "x", "requested": 0, "existing": 0, "generated": 0, "tokens": 0, "seconds": 0.0,
        "settings": "s", "engine": {}})

    def gone(*args, **kwargs):
        raise SandboxUnavailable("The docker backend is unavailable: the engine does not answer.")

    monkeypatch.setattr(execute, "execute_samples", gone)
    with pytest.raises(InfrastructureError, match="judged on docker .docker 26.1.5; pinned in .*never mixes"):
        run_module.sample_and_judge(run, family, family.checkpoints[0], {}, manifest)


def test_the_first_execute_pins_backend_and_version(started, monkeypatch):
    import pipeline.execute as execute
    import pipeline.generate.stage as generate

    run, family, manifest = started
    monkeypatch.setattr(generate, "generate_checkpoint", lambda *a, **k: {
        "checkpoint": "c", "path": "x", "requested": 0, "existing": 0, "generated": 0, "tokens": 0, "seconds": 0.0,
        "settings": "s", "engine": {}})
    monkeypatch.setattr(execute, "execute_samples", lambda *a, **k: ExecuteSummary(
        samples=1, executed_programs=1, backend="bwrap", backend_version="bubblewrap 0.8.0; capforecast 0.1"))
    run_module.sample_and_judge(run, family, family.checkpoints[0], {}, manifest)
    pinned = run.read_manifest().sandbox
    assert (pinned.backend, pinned.version) == ("bwrap", "bubblewrap 0.8.0; capforecast 0.1")
    assert os.path.exists(run.manifest)
