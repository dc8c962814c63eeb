"""The generate command: shards, merge and plans through the CLI, and a real kill -9 / resume."""
import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.generate.stage import generate_family, register
from test_generate import rows_by_key, write_tiny_setup

REPO = Path(__file__).resolve().parent.parent


def cli(*argv) -> int:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["generate", *argv])
    return args.func(args)


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    return write_tiny_setup(tmp_path_factory.mktemp("cli"), names=("a", "b"), n=2)


def load_family(config):
    from pipeline.config import load_config

    return load_config(config).family()


def test_cli_shards_and_merge_equal_one_run(config, tmp_path, capsys):
    generate_family(load_family(config), tmp_path / "one")
    for i in range(3):
        assert cli("--config", str(config), "--out", str(tmp_path / "sharded"), "--shard", f"{i}/3") == 0
    assert cli("--out", str(tmp_path / "sharded"), "--merge") == 0
    for name in ("a", "b"):
        assert rows_by_key(tmp_path / "sharded" / "samples" / f"{name}.jsonl") == \
            rows_by_key(tmp_path / "one" / "samples" / f"{name}.jsonl")
    summaries = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"engine"' in line]
    assert {s["checkpoint"] for s in summaries} == {"a", "b"}
    assert (tmp_path / "sharded" / "generation" / "a.shard-0-of-3.json").exists()


def test_cli_honours_the_slurm_array_environment(config, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    assert cli("--config", str(config), "--out", str(tmp_path), "--checkpoint", "b") == 0
    assert [p.name for p in (tmp_path / "samples" / "shards").iterdir()] == ["b.shard-1-of-2.jsonl"]


def test_cli_plan_names_unknown_checkpoint(config, tmp_path):
    from pipeline.errors import UserError

    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"requests": [{"checkpoint": "zzz", "task_id": "T/0", "n_total": 1}]}))
    with pytest.raises(UserError, match="zzz"):
        cli("--config", str(config), "--out", str(tmp_path), "--plan", str(plan))


@pytest.mark.slow
def test_kill_and_resume_gives_the_uninterrupted_file(tmp_path):
    config = write_tiny_setup(tmp_path / "fam", n=24, batch_size=2, max_new_tokens=24, stop=["\n#"])
    family = load_family(config)
    generate_family(family, tmp_path / "whole")
    expected = rows_by_key(tmp_path / "whole" / "samples" / "small.jsonl")
    out = tmp_path / "killed"
    samples = out / "samples" / "small.jsonl"
    command = [sys.executable, "-m", "pipeline.cli", "generate", "--config", str(config), "--out", str(out)]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while not (samples.exists() and len(samples.read_text().splitlines()) >= 10):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "generate wrote nothing in 120 s"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = len(samples.read_text().splitlines())
    assert 10 <= partial < len(expected), "the kill should land mid-run"
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1])["existing"] >= partial - 1
    assert rows_by_key(samples) == expected
