"""`capforecast loss --measurements FILE.csv`: a table of losses in, the loss law's forecast out, through the CLI;
and the Chinchilla runs (Hoffmann et al. 2022, re-extracted by Besiroglu et al. 2024) as the real test."""
import csv
import json
from pathlib import Path

import pytest

from pipeline.cli import main

CHINCHILLA = Path(__file__).parents[2] / "shared" / "data" / "realdata" / "chinchilla_points.csv"
LAW = [(1e18 * 10 ** (i / 2), 1.2 * (10 ** (i / 2 - 4)) ** -0.08 + 1.7) for i in range(8)]


def _write(path, rows, header="checkpoint,compute,loss"):
    path.write_text(header + "\n" + "".join(",".join(str(v) for v in r) + "\n" for r in rows))
    return path


def _table(tmp_path, rows=None):
    rows = rows or [(f"m{i}", c, round(l * (1 + 0.002 * (-1) ** i), 5)) for i, (c, l) in enumerate(LAW)]
    return _write(tmp_path / "losses.csv", rows)


def _run(tmp_path, table, *extra):
    out = tmp_path / "loss.json"
    rc = main(["loss", "--measurements", str(table), "--out", str(out), "--bootstrap", "20", *extra])
    return rc, (json.loads(out.read_text()) if rc == 0 else None)


def test_writes_the_prediction_block_for_the_largest_run(tmp_path):
    rc, out = _run(tmp_path, _table(tmp_path))
    pred = out["prediction"]
    assert rc == 0 and out["target"]["name"] == "m7" and "actual" in out
    assert set(pred) >= {"value", "interval", "level"} and pred["level"] == 0.9
    assert pred["interval"][0] <= pred["value"] <= pred["interval"][1]
    assert out["fit"]["checkpoints"] == [f"m{i}" for i in range(7)]


def test_target_compute_beyond_every_run_fits_them_all(tmp_path):
    rc, out = _run(tmp_path, _table(tmp_path), "--target-compute", "1e23")
    assert rc == 0 and out["target"] == {"name": None, "compute": 1e23} and "actual" not in out
    assert len(out["fit"]["checkpoints"]) == 8


def test_level_and_seed_are_used(tmp_path):
    rc, out = _run(tmp_path, _table(tmp_path), "--level", "0.5", "--seed", "3")
    assert rc == 0 and out["prediction"]["level"] == 0.5


def test_extra_columns_are_ignored(tmp_path):
    rows = [(f"m{i}", c, l, 123) for i, (c, l) in enumerate(LAW)]
    rc, _ = _run(tmp_path, _write(tmp_path / "t.csv", rows, "checkpoint,compute,loss,tokens"))
    assert rc == 0


@pytest.mark.parametrize("header,rows,message", [
    ("checkpoint,flops,loss", [("a", 1e18, 3.0)], "line 1: missing column(s) compute"),
    ("checkpoint,compute,loss", [("a", "lots", 3.0)], "line 2: field 'compute' is not a number"),
    ("checkpoint,compute,loss", [("a", 1e18, 3.0), ("b", 1e19, -2.0)], "line 3: field 'loss' must be a positive"),
    ("checkpoint,compute,loss", [("a", 1e18, 3.0), ("b", 1e19, "nan")], "line 3: field 'loss' must be a positive"),
    ("checkpoint,compute,loss", [("a", 1e18, 3.0), ("a", 1e19, 2.9)], "line 3: checkpoint 'a' appears again"),
    ("checkpoint,compute,loss", [(" ", 1e18, 3.0)], "line 2: field 'checkpoint' is empty"),
    ("checkpoint,compute,loss", [], "no measurements"),
    ("checkpoint,compute,loss", [("a", 1e18, 3.0), ("b", 1e19, 2.9), ("c", 1e20, 2.8)], "at least 3 checkpoints"),
    ("checkpoint,compute,loss", [("a", 1e18, 3.0), ("b", 1e18, 2.9)], "2 runs have the target compute"),
])
def test_bad_tables_name_file_line_and_field_and_exit_2(tmp_path, capsys, header, rows, message):
    rc, _ = _run(tmp_path, _write(tmp_path / "bad.csv", rows, header))
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err
    assert "bad.csv" in err or "at least 3" in message  # the fit's own error names the usable checkpoints


@pytest.mark.parametrize("extra,message", [
    (["--level", "1.5"], "--level must lie strictly between 0 and 1"),
    (["--target-compute", "-5"], "--target-compute must be a positive"),
])
def test_bad_options_exit_2(tmp_path, capsys, extra, message):
    rc, _ = _run(tmp_path, _table(tmp_path), *extra)
    assert rc == 2 and message in capsys.readouterr().err


def test_missing_out_and_missing_file_exit_2(tmp_path, capsys):
    assert main(["loss", "--measurements", str(_table(tmp_path))]) == 2
    assert "--out F.json is required" in capsys.readouterr().err
    assert main(["loss", "--measurements", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o.json")]) == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["loss", "--frontier", "--out", "x.json"], "work with --measurements FILE.csv only"),
    (["loss", "--target-compute", "1e22", "--config", "c.yaml", "--out", "d"], "work with --measurements"),
    (["loss", "some_run", "--measurements", "t.csv", "--out", "x.json"], "not both"),
])
def test_measurement_options_outside_measurement_mode_exit_2(capsys, argv, message):
    assert main(argv) == 2 and message in capsys.readouterr().err


def _chinchilla(tmp_path):
    rows = [(f"run{r['id']}", r["C_flop"], r["loss"]) for r in csv.DictReader(open(CHINCHILLA))]
    return _write(tmp_path / "chinchilla.csv", rows)


@pytest.mark.slow
@pytest.mark.parametrize("fraction", ["0.1", "0.01", "0.001"])
def test_chinchilla_frontier_forecast_covers_the_largest_run(tmp_path, capsys, fraction):
    rc, out = _run(tmp_path, _chinchilla(tmp_path), "--frontier", "--max-fit-compute-fraction", fraction,
                   "--bootstrap", "100")
    lo, hi = out["prediction"]["interval"]
    actual = out["actual"]["value"]
    assert rc == 0 and out["target"]["name"] == "run244" and lo <= actual <= hi
    if fraction == "0.01":
        assert abs(out["prediction"]["value"] / actual - 1) <= 0.03
    assert "one L(C) curve" not in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("fraction", ["1", "0.1", "0.01", "0.001"])
def test_chinchilla_all_runs_forecast_inside_its_interval_with_the_off_curve_warning(tmp_path, capsys, fraction):
    rc, out = _run(tmp_path, _chinchilla(tmp_path), "--max-fit-compute-fraction", fraction, "--bootstrap", "100")
    lo, hi = out["prediction"]["interval"]
    assert rc == 0 and lo <= out["prediction"]["value"] <= hi
    assert "warning: the points do not lie on one L(C) curve" in capsys.readouterr().err


def test_chinchilla_frontier_at_one_hundredth_is_within_3_percent(tmp_path):
    rc, out = _run(tmp_path, _chinchilla(tmp_path), "--frontier", "--max-fit-compute-fraction", "0.01",
                   "--bootstrap", "0")
    assert rc == 0 and abs(out["prediction"]["value"] / out["actual"]["value"] - 1) <= 0.03
