"""The report on a loss.json from the real producer: the prediction interval is named, warnings are shown,
the a-c note appears only when c trades off against a."""
import json

import numpy as np
import pytest
from test_report import make_run

from pipeline.forecast.loss_forecast import LossFitSettings, loss_forecast_json
from pipeline.records import atomic_write_json
from pipeline.report.stage import write_report


def _loss_json(target_compute, loss):
    x = np.logspace(-4, -1, 8)
    rows = [{"checkpoint": f"m{i}", "compute": float(xi * target_compute), "mean_loss": float(li)}
            for i, (xi, li) in enumerate(zip(x, loss(x)))]
    return loss_forecast_json(rows, None, target_compute, LossFitSettings(bootstrap=20))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("loss") / "run")


def _target(run_dir):
    return json.loads((run_dir / "manifest.json").read_text())["target"]["compute"]


def _report(run_dir, result):
    atomic_write_json(run_dir / "loss.json", result)
    return write_report(run_dir).read_text()


def test_headline_names_the_prediction_interval(run_dir):
    target = _target(run_dir)
    text = _report(run_dir, _loss_json(target, lambda x: (1.2 * x ** -0.08 + 1.7) * (1 + 0.003 * np.sin(9 * x))))
    assert "90% prediction interval" in text


def test_off_curve_warning_reaches_the_report(run_dir):
    target = _target(run_dir)
    rng = np.random.default_rng(0)
    text = _report(run_dir, _loss_json(target, lambda x: (1.2 * x ** -0.08 + 1.7) * np.exp(rng.normal(0, 0.05, 8))))
    assert "do not lie on one L(C) curve" in text


def test_no_a_c_note_when_c_is_well_determined(run_dir):
    target = _target(run_dir)
    result = _loss_json(target, lambda x: 1.2 * x ** -0.08 + 1.7)
    assert not any("trades off" in n for n in result["fit"]["identifiability"])
    assert "trades off against a" not in _report(run_dir, result)
