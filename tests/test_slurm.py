"""Slurm: job scripts, and a real single-node cluster (slurmctld, slurmd, munge) started here.

The integration test installs slurm-wlm and munge with apt when missing (CI runs as root), writes a
minimal slurm.conf, starts the daemons, submits generate + execute arrays and checks the results
equal a local run of the same config. The daemons it started are stopped afterwards.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.errors import UserError
from pipeline.slurm import SlurmSettings, submit, wait_for_jobs, write_scripts
from test_generate import rows_by_key, write_tiny_setup

PROBLEMS = [  # prompts that are whole functions: an empty completion passes, most random ones fail
    {"task_id": f"S/{i}", "prompt": f"def f():\n    return {i}\n", "entry_point": "f",
     "test": f"def check(candidate):\n    assert candidate() == {i}\n"} for i in range(4)]


def load_family(config):
    from pipeline.config import load_config

    return load_config(config).family()


def test_scripts_chain_shards_and_checkpoints(tmp_path):
    config = write_tiny_setup(tmp_path / "fam", names=("a", "b"), build=False)
    family = load_family(config)
    gen, ex, names = write_scripts(config, family, tmp_path / "run", SlurmSettings(shards=3, gpus_per_task=1,
                                                                                  partition="gpu"))
    g, e = gen.read_text(), ex.read_text()
    assert "#SBATCH --array=0-2" in g and "#SBATCH --gres=gpu:1" in g and "#SBATCH --partition=gpu" in g
    assert '--shard "$SLURM_ARRAY_TASK_ID/3"' in g
    assert "#SBATCH --array=0-1" in e and "--gres" not in e and names == ["a", "b"]
    assert e.index("--merge") < e.index(" execute ")


def test_plan_limits_the_execute_array(tmp_path):
    config = write_tiny_setup(tmp_path / "fam", names=("a", "b"), build=False)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"requests": [{"checkpoint": "b", "task_id": "T/0", "n_total": 4}]}))
    _, ex, names = write_scripts(config, load_family(config), tmp_path / "run", SlurmSettings(), plan)
    assert names == ["b"] and "#SBATCH --array=0-0" in ex.read_text()


def test_missing_sbatch_is_a_user_error(tmp_path, monkeypatch):
    config = write_tiny_setup(tmp_path / "fam", build=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(UserError, match="sbatch not found"):
        submit(config, load_family(config), tmp_path / "run", SlurmSettings())


def test_waiting_without_a_submission_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no submission"):
        wait_for_jobs(tmp_path)


# ---------------------------------------------------------------- a real single-node Slurm

def _sh(*cmd, check=True, **kw):
    return subprocess.run(list(cmd), capture_output=True, text=True, check=check, timeout=120, **kw)


def _install_slurm():
    if shutil.which("slurmctld") and shutil.which("munged"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("slurm-wlm/munge missing and this user cannot apt-get install them")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if _sh("apt-get", "install", "-y", "-q", "slurm-wlm", "munge", check=False, env=env).returncode != 0:
        _sh("apt-get", "update", "-q", env=env)
        _sh("apt-get", "install", "-y", "-q", "slurm-wlm", "munge", env=env)


def _slurm_conf(host: str) -> str:
    node = _sh("slurmd", "-C").stdout.splitlines()[0]  # the NodeName=... line, without UpTime
    return "\n".join([
        "ClusterName=capforecast-test", f"SlurmctldHost={host}(127.0.0.1)", "SlurmUser=root", "SlurmdUser=root",
        "AuthType=auth/munge", "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core", "ReturnToService=2", "MpiDefault=none",
        "StateSaveLocation=/var/lib/slurm/slurmctld", "SlurmdSpoolDir=/var/lib/slurm/slurmd",
        "SlurmctldPidFile=/var/lib/slurm/slurmctld.pid", "SlurmdPidFile=/var/lib/slurm/slurmd.pid",
        "SlurmctldLogFile=/var/log/slurm/slurmctld.log", "SlurmdLogFile=/var/log/slurm/slurmd.log",
        "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
        "SchedulerType=sched/backfill", "MinJobAge=3600", "SlurmdTimeout=60",
        node, "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP", ""])


@pytest.fixture(scope="module")
def slurm_cluster():
    """Start munged, slurmctld and slurmd (as root) with a minimal config; stop what was started."""
    _install_slurm()
    if os.geteuid() != 0:
        pytest.skip("starting slurmctld/slurmd needs root")
    if _sh("scontrol", "ping", check=False).returncode == 0 and "UP" in _sh("scontrol", "ping").stdout:
        yield None  # a cluster is already up (e.g. started by CI): use it, stop nothing
        return
    host = socket.gethostname().split(".")[0]
    for d in ("/var/lib/slurm/slurmctld", "/var/lib/slurm/slurmd", "/var/log/slurm", "/run/munge", "/etc/slurm"):
        Path(d).mkdir(parents=True, exist_ok=True)
    conf = Path("/etc/slurm/slurm.conf")
    previous = conf.read_text() if conf.exists() else None
    conf.write_text(_slurm_conf(host))
    started = []
    if _sh("pgrep", "-x", "munged", check=False).returncode != 0:
        key = Path("/etc/munge/munge.key")
        if not key.exists():
            _sh("mungekey", "--create", "--keyfile", str(key))
        _sh("chown", "munge:munge", str(key), "/run/munge")
        key.chmod(0o400)
        _sh("runuser", "-u", "munge", "--", "/usr/sbin/munged")
        started.append(("munged", "/run/munge/munged.pid"))
    _sh("slurmctld")
    started.append(("slurmctld", "/var/lib/slurm/slurmctld.pid"))
    _sh("slurmd")
    started.append(("slurmd", "/var/lib/slurm/slurmd.pid"))
    try:
        deadline = time.monotonic() + 60
        while "idle" not in _sh("sinfo", "-h", "-o", "%T", check=False).stdout:
            if time.monotonic() > deadline:
                log = Path("/var/log/slurm/slurmctld.log")
                pytest.fail("Slurm node never became idle:\n" + (log.read_text()[-3000:] if log.exists() else ""))
            time.sleep(0.5)
        yield host
    finally:
        for name, pidfile in reversed(started):
            try:
                os.kill(int(Path(pidfile).read_text().strip()), 15)
            except (OSError, ValueError):
                pass
        time.sleep(1)
        if previous is not None:
            conf.write_text(previous)


def _execute(samples: Path, verdicts: Path, problems: Path):
    repo = Path(__file__).resolve().parent.parent
    _sh(sys.executable, "-m", "pipeline.cli", "execute", "--samples", str(samples), "--out", str(verdicts), "--problems", str(problems),
        "--sandbox", "bwrap", "--workers", "1", cwd=repo)


def _verdict_map(path: Path) -> dict:
    return {(r["task_id"], r["sample_index"]): (r["passed"], r["status"])
            for r in (json.loads(line) for line in path.read_text().splitlines() if line.strip())}


@pytest.mark.slow
def test_slurm_run_equals_a_local_run(slurm_cluster, tmp_path):
    from pipeline.generate.stage import generate_family

    config = write_tiny_setup(tmp_path / "fam", names=("a", "b"), problems=PROBLEMS, n=3, batch_size=3)
    family = load_family(config)
    problems = config.parent / "problems.jsonl"
    local = tmp_path / "local"
    generate_family(family, local)
    for name in ("a", "b"):
        _execute(local / "samples" / f"{name}.jsonl", local / "verdicts" / f"{name}.jsonl", problems)

    remote = tmp_path / "slurm"
    settings = SlurmSettings(shards=3, gpus_per_task=0, cpus_per_generate=1, cpus_per_execute=1,
                             sandbox="bwrap", workers=1)
    jobs = submit(config, family, remote, settings)
    states = wait_for_jobs(remote, poll_seconds=1, timeout=600)["states"]
    assert set(states["generate"]) == {"COMPLETED"} and len(states["generate"]) == 3, jobs
    assert set(states["execute"]) == {"COMPLETED"} and len(states["execute"]) == 2
    assert not (remote / "samples" / "shards").exists()
    for name in ("a", "b"):
        assert rows_by_key(remote / "samples" / f"{name}.jsonl") == rows_by_key(local / "samples" / f"{name}.jsonl")
        assert _verdict_map(remote / "verdicts" / f"{name}.jsonl") == _verdict_map(local / "verdicts" / f"{name}.jsonl")


@pytest.mark.slow
def test_run_on_slurm_equals_a_local_run(slurm_cluster, tmp_path):
    """`capforecast run --slurm N` waits for the arrays, then fits and reports as a local run does."""
    import yaml

    config = write_tiny_setup(tmp_path / "fam", names=("a", "b", "c", "d"), problems=PROBLEMS, n=4, batch_size=4)
    data = yaml.safe_load(config.read_text())
    data["families"]["tiny"].update(sandbox={"backend": "bwrap", "workers": 1}, loss={"enabled": False},
                                    fit={"bootstrap": 20})
    config.write_text(yaml.safe_dump(data))
    repo = Path(__file__).resolve().parent.parent
    run = [sys.executable, "-m", "pipeline.cli", "run", "--config", str(config), "--out"]
    for out, extra in (("local", []), ("slurm", ["--slurm", "2", "--gpus-per-task", "0", "--cpus-per-task", "1"])):
        proc = subprocess.run([*run, str(tmp_path / out), *extra], cwd=repo, timeout=600)
        assert proc.returncode in (0, 1)   # 1: finished without a forecast (tiny random models)
    local, remote = (tmp_path / d for d in ("local", "slurm"))
    assert (remote / "pass_counts.csv").read_text() == (local / "pass_counts.csv").read_text()
    assert (remote / "report.md").exists() and (remote / "slurm" / "jobs.json").exists()
    manifest = json.loads((remote / "manifest.json").read_text())
    assert set(manifest["slurm"]["states"]["execute"]) == {"COMPLETED"}
