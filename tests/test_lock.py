"""Issue 25: one writer per run directory and verdicts file. A second writer is refused at once with the holder's pid
and command; a lock left by a dead process is taken over with a warning."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.lock import Locked, WriterLock, note_path

ROOT = Path(__file__).resolve().parent.parent

HOLD = ("import sys, time; from pipeline.lock import WriterLock; lock = WriterLock(sys.argv[1]).acquire(); "
        "print('held', flush=True); time.sleep(float(sys.argv[2]))")


def holder(path: Path, seconds: float = 60) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds), "--marker"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_second_writer_is_refused_at_once_naming_pid_and_command(tmp_path, kind):
    path = tmp_path / ("verdicts.jsonl" if kind == "file" else "run")
    if kind == "directory":
        path.mkdir()
    proc = holder(path)
    try:
        start = time.monotonic()
        with pytest.raises(Locked) as err:
            WriterLock(path).acquire()
        assert time.monotonic() - start < 1.0
        assert f"pid {proc.pid}" in str(err.value) and "--marker" in str(err.value)
    finally:
        proc.kill()
        proc.wait()


def test_two_writers_in_one_process_are_refused_too(tmp_path):
    with WriterLock(tmp_path / "v.jsonl"):
        with pytest.raises(Locked, match=f"pid {os.getpid()}"):
            WriterLock(tmp_path / "v.jsonl").acquire()


def test_lock_of_a_killed_process_is_taken_over_with_a_warning(tmp_path, capsys):
    path = tmp_path / "v.jsonl"
    proc = holder(path)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with WriterLock(path):
        err = capsys.readouterr().err
        assert f"took over the lock left by pid {proc.pid}" in err and "no longer running" in err


def test_released_lock_is_taken_without_a_warning(tmp_path, capsys):
    path = tmp_path / "v.jsonl"
    release = "import sys; from pipeline.lock import WriterLock\nwith WriterLock(sys.argv[1]): pass"
    subprocess.run([sys.executable, "-c", release, str(path)], cwd=ROOT, check=True, capture_output=True)
    with WriterLock(path):
        pass
    assert "took over" not in capsys.readouterr().err
    assert not note_path(path).exists() and sorted(p.name for p in tmp_path.iterdir()) == ["v.jsonl"]


def test_second_execute_on_one_verdicts_file_is_refused_before_judging(tmp_path, capsys):
    from pipeline.cli import main

    samples = tmp_path / "s.jsonl"
    samples.write_text('{"task_id": "HumanEval/0", "completion": "    return True\\n"}\n')
    out = tmp_path / "v.jsonl"
    proc = holder(out)
    try:
        assert main(["execute", "--samples", str(samples), "--out", str(out), "--sandbox", "unsafe-no-isolation",
                     "--no-calibrate"]) == 2
        err = capsys.readouterr().err
        assert f"--out {out}: another capforecast process writes here: pid {proc.pid}" in err
        assert out.read_bytes() == b""                   # nothing judged, nothing written
    finally:
        proc.kill()
        proc.wait()


def test_generate_beside_a_writer_of_the_same_samples_file_is_refused(tmp_path):
    from pipeline.generate.stage import generate_checkpoint

    samples = tmp_path / "samples" / "m.jsonl"
    proc = holder(samples)
    try:
        with pytest.raises(Locked, match=f"samples file {samples}: another capforecast process writes here: "
                                         f"pid {proc.pid}"):
            generate_checkpoint(None, None, {}, samples)     # refused before the family is even looked at
    finally:
        proc.kill()
        proc.wait()
