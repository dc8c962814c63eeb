"""Execute stage: verdict format, resume, de-duplication, retries, bad input."""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import pytest

import sandbox
from pipeline.errors import UserError
from pipeline.execute import ExecuteOptions, execute_samples, latest_verdicts
from sandbox.api import Outcome

PROBLEMS = {
    "T/0": {"task_id": "T/0", "prompt": "def f(x):\n", "test": "def check(c):\n    assert c(1) == 2\n",
            "entry_point": "f", "canonical_solution": "    return x + 1\n"},
}


class FakeBackend:
    """Judges by looking at the completion text; can fail the first attempts with a sandbox error."""

    name = "fake"

    def __init__(self, flaky: int = 0):
        self.flaky = flaky
        self.programs: list = []

    def run(self, programs):
        for p in programs:
            self.programs.append(p)
            if self.flaky:
                self.flaky -= 1
                yield Outcome(p.id, "sandbox error", "fake infrastructure fault")
            else:
                yield Outcome(p.id, "passed" if "x + 1" in p.candidate else "failed")

    def close(self):
        pass


@pytest.fixture
def fake(monkeypatch):
    holder = {"backend": FakeBackend()}

    @contextmanager
    def open_backend(name="auto", limits=None, workers=None):
        yield holder["backend"]

    monkeypatch.setattr(sandbox, "open_backend", open_backend, raising=False)
    monkeypatch.setattr(sandbox, "calibrate_cpu_limits", lambda problems, backend, **kw: {}, raising=False)
    return holder


def write_samples(path: Path, completions: list[str]) -> Path:
    with open(path, "w") as fh:
        for i, c in enumerate(completions):
            fh.write(json.dumps({"task_id": "T/0", "completion": c, "checkpoint": "m", "sample_index": i,
                                 "seed": 1000 + i, "extra": {"k": i}}) + "\n")
    return path


def test_verdict_rows_carry_input_fields_except_completion(tmp_path, fake):
    samples = write_samples(tmp_path / "s.jsonl", ["    return x + 1\n", "    return x\n"])
    execute_samples(samples, tmp_path / "v.jsonl", PROBLEMS, ExecuteOptions())
    rows = sorted(latest_verdicts(tmp_path / "v.jsonl"), key=lambda r: r["sample_index"])
    assert [r["passed"] for r in rows] == [True, False]
    assert [r["status"] for r in rows] == ["passed", "failed"]
    assert all("completion" not in r and r["extra"] == {"k": r["sample_index"]} and r["seed"] == 1000 + i
               for i, r in enumerate(rows))


def test_identical_completions_run_once(tmp_path, fake):
    samples = write_samples(tmp_path / "s.jsonl", ["    return x + 1\n"] * 5 + ["    return 0\n"])
    summary = execute_samples(samples, tmp_path / "v.jsonl", PROBLEMS, ExecuteOptions())
    assert summary.executed_programs == 2 and len(latest_verdicts(tmp_path / "v.jsonl")) == 6


def test_rerun_of_finished_stage_does_no_work(tmp_path, fake):
    samples = write_samples(tmp_path / "s.jsonl", ["    return x + 1\n", "    return x\n"])
    execute_samples(samples, tmp_path / "v.jsonl", PROBLEMS, ExecuteOptions())
    fake["backend"] = FakeBackend()
    summary = execute_samples(samples, tmp_path / "v.jsonl", PROBLEMS, ExecuteOptions())
    assert summary.already_done == 2 and fake["backend"].programs == []


def test_interrupted_stage_resumes_only_what_is_missing(tmp_path, fake):
    samples = write_samples(tmp_path / "s.jsonl", [f"    return x + {i}\n" for i in range(6)])
    out = tmp_path / "v.jsonl"
    execute_samples(samples, out, PROBLEMS, ExecuteOptions())
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:3]) + lines[3][:10])  # killed mid-write of the fourth verdict
    fake["backend"] = FakeBackend()
    execute_samples(samples, out, PROBLEMS, ExecuteOptions())
    assert len(fake["backend"].programs) == 3
    assert sorted(r["sample_index"] for r in latest_verdicts(out)) == list(range(6))


def test_sandbox_error_is_retried_not_counted_as_fail(tmp_path, fake):
    fake["backend"] = FakeBackend(flaky=1)
    samples = write_samples(tmp_path / "s.jsonl", ["    return x + 1\n"])
    execute_samples(samples, tmp_path / "v.jsonl", PROBLEMS, ExecuteOptions(retries=2))
    assert [r["status"] for r in latest_verdicts(tmp_path / "v.jsonl")] == ["passed"]


def test_persistent_sandbox_error_is_reported_and_retried_on_rerun(tmp_path, fake):
    fake["backend"] = FakeBackend(flaky=10)
    samples = write_samples(tmp_path / "s.jsonl", ["    return x + 1\n"])
    summary = execute_samples(samples, tmp_path / "v.jsonl", PROBLEMS, ExecuteOptions(retries=1))
    assert summary.statuses == {"sandbox error": 1}
    fake["backend"] = FakeBackend()
    execute_samples(samples, tmp_path / "v.jsonl", PROBLEMS, ExecuteOptions())
    assert [r["status"] for r in latest_verdicts(tmp_path / "v.jsonl")] == ["passed"]


BAD_ROWS = {
    "missing completion": ('{"task_id": "T/0"}', "field 'completion' is missing"),
    "completion not a string": ('{"task_id": "T/0", "completion": 3}', "field 'completion' should be str"),
    "unknown task": ('{"task_id": "X/9", "completion": ""}', "field 'task_id': 'X/9' matches no problem"),
    "not json": ('{"task_id": ', "not valid JSON"),
}


@pytest.mark.parametrize("case", BAD_ROWS, ids=list(BAD_ROWS))
def test_bad_sample_row_names_file_line_and_field(tmp_path, fake, case):
    row, words = BAD_ROWS[case]
    samples = tmp_path / "s.jsonl"
    samples.write_text('{"task_id": "T/0", "completion": ""}\n' + row + "\n")
    with pytest.raises(UserError) as err:
        execute_samples(samples, tmp_path / "v.jsonl", PROBLEMS, ExecuteOptions())
    assert f"{samples}, line 2" in str(err.value) and words in str(err.value)


def test_cli_cpu_floor_is_the_sandbox_calibration_floor():
    from sandbox.calibrate import FLOOR_S

    from pipeline.config import SandboxSettings

    assert FLOOR_S == ExecuteOptions().cpu_seconds == SandboxSettings().cpu_seconds


def test_cli_unknown_sandbox_is_a_one_paragraph_error(tmp_path, capsys):
    from pipeline.cli import main

    samples = tmp_path / "s.jsonl"
    samples.write_text('{"task_id": "HumanEval/0", "completion": "    return False\\n"}\n')
    assert main(["execute", "--samples", str(samples), "--out", str(tmp_path / "v.jsonl"), "--sandbox", "nope"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "\n\n" not in err.strip()
    assert "unknown sandbox backend 'nope'" in err


def test_limits_calibrated_earlier_in_the_run_are_not_timed_again(tmp_path, fake, monkeypatch):
    calls = []
    monkeypatch.setattr(sandbox, "calibrate_cpu_limits",
                        lambda problems, backend, **kw: calls.append(set(problems)) or {t: 1.0 for t in problems})
    samples = write_samples(tmp_path / "s.jsonl", ["    return x + 1\n"])
    summary = execute_samples(samples, tmp_path / "v.jsonl", PROBLEMS,
                              ExecuteOptions(known_cpu_limits={"T/0": 0.7}))
    assert calls == [] and summary.cpu_limits == {"T/0": 0.7}


def test_problems_without_earlier_limits_are_calibrated(tmp_path, fake, monkeypatch):
    calls = []
    monkeypatch.setattr(sandbox, "calibrate_cpu_limits",
                        lambda problems, backend, **kw: calls.append(set(problems)) or {t: 1.0 for t in problems})
    samples = write_samples(tmp_path / "s.jsonl", ["    return x + 1\n"])
    execute_samples(samples, tmp_path / "v.jsonl", PROBLEMS, ExecuteOptions(known_cpu_limits={"X/1": 0.7}))
    assert calls == [{"T/0"}]
