"""`capforecast plan` and `capforecast passuntil` on a bare CSV and on a run directory."""
import argparse
import json

import pytest

from pipeline.sampling import plan as plan_cli
from pipeline.errors import UserError
from pipeline.records import PassCount, write_pass_counts
from simulated.runs import family_of, write_manifest_for

CHECKPOINTS = [("a", 1e20), ("b", 1e21), ("c", 1e22), ("big", 1e24)]


def _main(argv):
    parser = argparse.ArgumentParser()
    plan_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def _run_dir(tmp_path, outcomes):
    run = tmp_path / "run"
    (run / "verdicts").mkdir(parents=True)
    write_manifest_for(run, family_of(dict(CHECKPOINTS), "big"), problems_path=str(tmp_path / "none.jsonl"))
    for name, _ in CHECKPOINTS:
        rows = [{"checkpoint": name, "task_id": task, "sample_index": i, "passed": ok,
                 "status": "passed" if ok else "failed"}
                for task, seq in outcomes.items() for i, ok in reversed(list(enumerate(seq)))]
        (run / "verdicts" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def test_plan_on_a_csv_writes_the_contracted_plan(tmp_path):
    csv = tmp_path / "counts.csv"
    write_pass_counts(csv, [PassCount(n, c, f"T/{i}", 10, i) for n, c in CHECKPOINTS[:3] for i in range(3)])
    assert _main(["plan", "--pass-counts", str(csv), "--out", str(tmp_path / "plan.json"),
                  "--target-compute", "1e24", "--pilot", "10"]) == 0
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["design"]["cells"] and plan["requests"]
    assert all(set(r) >= {"checkpoint", "task_id", "n_total"} and r["n_total"] > 10 for r in plan["requests"])
    assert all(r["task_id"] != "T/0" or r["n_total"] > 10 for r in plan["requests"])


def test_replanning_keeps_the_recorded_design_and_refuses_to_change_it(tmp_path):
    csv = tmp_path / "counts.csv"
    write_pass_counts(csv, [PassCount(n, c, "T/1", 10, 2) for n, c in CHECKPOINTS[:3]])
    out = str(tmp_path / "plan.json")
    _main(["plan", "--pass-counts", str(csv), "--out", out, "--target-compute", "1e24"])
    cells = json.loads((tmp_path / "plan.json").read_text())["design"]["cells"]
    _main(["plan", "--pass-counts", str(csv), "--out", out])
    assert json.loads((tmp_path / "plan.json").read_text())["design"]["cells"] == cells
    with pytest.raises(UserError, match="already allocated"):
        _main(["plan", "--pass-counts", str(csv), "--out", out, "--budget", "99"])


def test_plan_and_estimates_on_a_run_directory(tmp_path):
    run = _run_dir(tmp_path, {"T/0": [False, True, False], "T/1": [True, True]})
    assert _main(["plan", str(run), "--pilot", "0", "--r", "1"]) == 0
    assert json.loads((run / "plan.json").read_text())["done"]
    assert _main(["passuntil", str(run)]) == 0
    lines = (run / "passuntil.csv").read_text().splitlines()
    row = dict(zip(lines[0].split(","), next(x for x in lines[1:] if x.startswith("a,") and ",T/0," in x).split(",")))
    assert (row["draws"], row["status"], float(row["log_p"])) == ("2", "complete", -1.0)
    summary = json.loads((run / "passuntil.json").read_text())
    assert summary["prediction"]["value"] < 0 and "actual" in summary


def test_passuntil_csv_round_trips(tmp_path):
    run = _run_dir(tmp_path, {"T/0": [False, True], "T/1": [True]})
    _main(["passuntil", str(run)])
    out = tmp_path / "again"
    _main(["passuntil", "--pass-counts", str(run / "passuntil.csv"), "--target", "big",
           "--target-compute", "1e24", "--out", str(out)])
    first = json.loads((run / "passuntil.json").read_text())["points"]
    assert json.loads((out / "passuntil.json").read_text())["points"] == first


def test_passuntil_on_plain_counts_explains_that_order_is_needed(tmp_path):
    csv = tmp_path / "counts.csv"
    write_pass_counts(csv, [PassCount("a", 1e20, "T/0", 10, 2)])
    with pytest.raises(UserError, match="order of draws"):
        _main(["passuntil", "--pass-counts", str(csv)])


@pytest.mark.parametrize("argv,message", [
    (["plan"], "one of them"),
    (["plan", "--pass-counts", "x.csv"], "--out"),
    (["passuntil"], "one of them"),
])
def test_missing_inputs_are_user_errors(tmp_path, argv, message):
    if "x.csv" in argv:
        write_pass_counts(tmp_path / "x.csv", [PassCount("a", 1e20, "T/0", 1, 1)])
        argv = [a.replace("x.csv", str(tmp_path / "x.csv")) for a in argv]
    with pytest.raises(UserError, match=message):
        _main(argv)


@pytest.mark.parametrize("text,message", [("{", "not valid JSON"), ("{}", "'design' is missing"),
                                          ('{"design": {"kind": "x"}}', "design.kind")])
def test_bad_design_files_are_named(tmp_path, text, message):
    csv = tmp_path / "counts.csv"
    write_pass_counts(csv, [PassCount("a", 1e20, "T/0", 1, 1)])
    (tmp_path / "d.json").write_text(text)
    with pytest.raises(UserError, match=message):
        _main(["plan", "--pass-counts", str(csv), "--out", str(tmp_path / "p.json"), "--design",
               str(tmp_path / "d.json")])


def test_the_target_is_planned_only_when_asked(tmp_path):
    run = _run_dir(tmp_path, {"T/0": [False], "T/1": [False]})
    _main(["plan", str(run), "--pilot", "0"])
    planned = {r["checkpoint"] for r in json.loads((run / "plan.json").read_text())["requests"]}
    assert planned == {"a", "b", "c"}
    _main(["plan", str(run), "--include-target"])
    planned = {r["checkpoint"] for r in json.loads((run / "plan.json").read_text())["requests"]}
    assert "big" in planned
