"""JSONL/CSV plumbing shared by every stage: gzip, torn tails, and errors naming file, line and field."""
from __future__ import annotations

import gzip

import pytest

from pipeline.errors import UserError
from pipeline.problems import load_problems
from pipeline.records import BadInput, JsonlAppender, read_jsonl, read_pass_counts


def test_gzip_and_plain_jsonl_read_alike(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"x": 1}\n\n{"x": 2}\n')
    with gzip.open(tmp_path / "a.jsonl.gz", "wt") as fh:
        fh.write('{"x": 1}\n\n{"x": 2}\n')
    assert list(read_jsonl(tmp_path / "a.jsonl")) == list(read_jsonl(tmp_path / "a.jsonl.gz")) == [
        (1, {"x": 1}), (3, {"x": 2})]


def test_torn_tail_of_an_appended_file_is_skipped_and_repaired(tmp_path):
    path = tmp_path / "v.jsonl"
    path.write_text('{"x": 1}\n{"x": ')
    assert [row for _, row in read_jsonl(path)] == [{"x": 1}]
    with JsonlAppender(path) as out:
        out.write({"x": 2})
    assert [row for _, row in read_jsonl(path)] == [{"x": 1}, {"x": 2}]


def test_torn_tail_of_an_input_file_is_an_error(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"x": 1}\n{"x": ')
    with pytest.raises(BadInput, match=r"p.jsonl, line 2: not valid JSON"):
        list(read_jsonl(path, allow_torn_tail=False))


BAD_PROBLEMS = {
    "missing test": ('{"task_id": "a", "prompt": "", "entry_point": "f"}', "line 1: field 'test'"),
    "duplicate": ('{"task_id": "a", "prompt": "", "test": "", "entry_point": "f"}\n' * 2, "line 2: duplicate"),
    "empty": ("\n", "contains no problems"),
}


@pytest.mark.parametrize("case", BAD_PROBLEMS, ids=list(BAD_PROBLEMS))
def test_bad_problem_file_names_line_and_field(tmp_path, case):
    text, words = BAD_PROBLEMS[case]
    path = tmp_path / "problems.jsonl"
    path.write_text(text)
    with pytest.raises(UserError, match=words):
        load_problems(path)


BAD_COUNTS = {
    "missing column": ("checkpoint,compute,task_id,n\nm,1,t,3\n", "line 1: missing column"),
    "compute not a number": ("checkpoint,compute,task_id,n,passed\nm,lots,t,3,1\n", "line 2: field 'compute'"),
    "passed above n": ("checkpoint,compute,task_id,n,passed\nm,1e9,t,3,4\n", "line 2: need 0 <= passed <= n"),
    "negative compute": ("checkpoint,compute,task_id,n,passed\nm,-1,t,3,1\n", "line 2: field 'compute' must be"),
}


@pytest.mark.parametrize("case", BAD_COUNTS, ids=list(BAD_COUNTS))
def test_bad_pass_counts_name_line_and_field(tmp_path, case):
    text, words = BAD_COUNTS[case]
    path = tmp_path / "counts.csv"
    path.write_text(text)
    with pytest.raises(BadInput, match=words):
        read_pass_counts(path)
