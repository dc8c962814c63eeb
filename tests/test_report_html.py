"""report.html: self-contained (no network needed), and renders in headless Chromium with no console errors."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipeline.records import atomic_write_json
from pipeline.report.stage import write_report
from test_report import make_run

FIGURES = ["capability", "buckets", "loss", "atlas", "backtest"]
TABLES = ["checkpoints", "outcomes", "subset", "buckets", "parameters", "backtest", "registered", "provenance"]
FIT_BLUE = np.array([31, 119, 180]) / 255  # the fitted law's colour in every figure


def add_loss_and_backtest(run_dir: Path) -> None:
    """loss.json as pipeline.forecast.loss writes it, and backtest.json from pipeline.forecast.backtest."""
    import json

    forecast = json.loads((run_dir / "forecast.json").read_text())
    target = forecast["target"]
    xs = np.geomspace(3e-4, 3e-2, 5)
    a, b, c = 0.9, -0.08, 1.1
    atomic_write_json(run_dir / "loss.json", {
        "target": target, "law": "L(C) = a * (C / C_target)**b + c", "a": a, "a_interval": [0.7, 1.1], "b": b,
        "b_interval": [-0.1, -0.06], "c": c, "c_interval": [0.9, 1.25],
        "prediction": {"value": a + c, "interval": [1.93, 2.07], "level": 0.9, "interval_kind": "prediction",
                       "curve_interval": [1.95, 2.05]},
        "actual": {"value": 2.01},
        "points": [{"checkpoint": f"sim-{i}", "compute": x * target["compute"], "mean_loss": a * x ** b + c,
                    "used_in_fit": True} for i, x in enumerate(xs)],
        "fit": {"checkpoints": [f"sim-{i}" for i in range(len(xs))], "frontier_only": False, "huber_delta": 1e-3,
                "log_residuals": [0.0] * len(xs), "rms_log_residual": 0.0, "bootstrap": 200,
                "resampled": "checkpoint residuals", "calibration": None, "warnings": [],
                "identifiability": ["c trades off against a: their bootstrap correlation is -0.93"]}})
    from pipeline.forecast.backtest import backtest
    from pipeline.forecast.fit import FitOptions
    from pipeline.records import read_pass_counts

    atomic_write_json(run_dir / "backtest.json", backtest(read_pass_counts(run_dir / "pass_counts.csv"),
                                                          FitOptions(bootstrap=50), max_holdout=2))



def register_then_score(run_dir: Path) -> None:
    """A forecast registered by pipeline.forecast.register before the target's counts exist, then scored."""
    from pipeline.records import read_pass_counts, write_pass_counts
    from pipeline.forecast.register import register_forecast, score_forecasts

    counts = read_pass_counts(run_dir / "pass_counts.csv")
    write_pass_counts(run_dir / "pass_counts.csv", [c for c in counts if c.checkpoint != "target"])
    register_forecast(run_dir)
    write_pass_counts(run_dir / "pass_counts.csv", counts)
    score_forecasts(run_dir)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> Path:
    run_dir = make_run(tmp_path_factory.mktemp("html") / "run")
    register_then_score(run_dir)
    add_loss_and_backtest(run_dir)
    write_report(run_dir)
    return run_dir


def test_every_figure_is_embedded_as_a_data_uri(full_run):
    page = (full_run / "report.html").read_text()
    for name in FIGURES:
        assert re.search(rf'data-figure="{name}"><img src="data:image/png;base64,[A-Za-z0-9+/=]{{1000,}}"', page), name


@pytest.mark.parametrize("pattern", [r'src="(?!data:)', r'href="(?!#|data:)', r"url\(", r"@import", r"<script",
                                     r"<link(?![^>]*href=\"data:)"])
def test_html_loads_nothing_from_outside(full_run, pattern):
    assert not re.search(pattern, (full_run / "report.html").read_text())


def test_html_forbids_network_by_policy(full_run):
    assert "default-src 'none'" in (full_run / "report.html").read_text()


def test_html_escapes_text_from_the_run(tmp_path):
    run_dir = make_run(tmp_path / "run", forecast=False)
    atomic_write_json(run_dir / "forecast.json", {"error": "<img src=x onerror=alert(1)> & friends",
                                                  "target": {"name": "big", "compute": 1e23}})
    write_report(run_dir)
    page = (run_dir / "report.html").read_text()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt; &amp; friends" in page


def test_every_table_is_in_the_html(full_run):
    page = (full_run / "report.html").read_text()
    for slug in TABLES:
        assert f'data-table="{slug}"' in page, slug


# ---------------------------------------------------------------- headless Chromium

def chromium_binary() -> str:
    """Chromium's path, installing Debian's package first when missing and we are root (as in CI)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() != 0:
        pytest.skip("chromium is not installed and installing it needs root (apt-get install -y chromium)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
                             capture_output=True, text=True, env=env, timeout=900)
    if install.returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True, env=env, timeout=600)
        install = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
                                 capture_output=True, text=True, env=env, timeout=900)
    assert install.returncode == 0, f"apt-get install chromium failed:\n{install.stderr[-2000:]}"
    return shutil.which("chromium")


def chromium(page: Path, tmp_path: Path, *mode: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    cmd = [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--window-size=1200,4000",
           *mode, page.resolve().as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def console_messages(stderr: str) -> list[str]:
    """Lines Chromium logs for console messages (errors, CSP violations, failed loads)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


@pytest.mark.slow
def test_console_scan_catches_a_broken_page(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
                   "content=\"default-src 'none'\"></head><body><img src=\"https://example.invalid/x.png\">"
                   "</body></html>")
    assert console_messages(chromium(bad, tmp_path, "--dump-dom").stderr)


@pytest.mark.slow
def test_report_renders_in_chromium_without_console_errors(full_run, tmp_path):
    page = full_run / "report.html"
    shot = tmp_path / "report.png"
    taken = chromium(page, tmp_path, f"--screenshot={shot}")
    assert taken.returncode == 0, taken.stderr[-2000:]
    dom = chromium(page, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console_messages(taken.stderr + dom.stderr) == []
    rendered = dom.stdout
    assert re.search(r'class="headline"[^>]*>.*Forecast for', rendered)
    for name in FIGURES:
        assert f'data-figure="{name}"' in rendered, name
    for slug in TABLES:
        assert f'data-table="{slug}"' in rendered, slug
    from matplotlib.image import imread

    pixels = imread(shot)[:, :, :3]
    assert pixels.shape[:2] == (4000, 1200)
    blue = np.all(np.abs(pixels - FIT_BLUE) < 0.06, axis=2).sum()
    assert blue > 2000, "the figures' fitted-law colour is missing from the screenshot: images did not render"


def test_all_five_figures_are_drawn(full_run):
    assert sorted(p.stem for p in (full_run / "figures").glob("*.png")) == sorted(FIGURES)


@pytest.mark.parametrize("needle", ["before the target's samples existed", "Loss forecast", "nats/token",
                                    "**Backtest (stacked method):**", "c trades off against a"])
def test_headline_block_summarises_loss_backtest_and_registration(full_run, needle):
    assert needle in (full_run / "report.md").read_text()
