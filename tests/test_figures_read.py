"""Issue 25, the figures as a reader sees them (each was looked at before and after the change): no empty bucket
panels or panels without tick labels, the actual never hidden behind the forecast, an inset that enlarges, an atlas
axis that ends near the target with labels apart, backtest points that name the held-out checkpoint, a loss axis
fitted to the data with its band."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.records import atomic_write_json, read_pass_counts

ROOT = Path(__file__).resolve().parent.parent
STARCODER = ROOT.parent / "shared/data/realdata/starcoderbase-astraios-lora_humanevalexplainsynthesize-python_n20.csv"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """StarCoderBase 1B/3B/7B -> 15B (real pass counts): 2 of 5 buckets forecastable, 14 problems falling."""
    from pipeline.forecast.backtest import backtest
    from pipeline.forecast.capability import forecast_or_error
    from pipeline.forecast.fit import FitOptions

    if not STARCODER.exists():
        pytest.skip("../shared/data/realdata is not here")
    run = tmp_path_factory.mktemp("figures") / "run"
    run.mkdir()
    shutil.copy(STARCODER, run / "pass_counts.csv")
    counts = read_pass_counts(run / "pass_counts.csv")
    options = FitOptions(bootstrap=100, buckets=5, alternatives=False)
    atomic_write_json(run / "forecast.json", forecast_or_error(counts, "starcoderbase-15b-lora", None, options))
    atomic_write_json(run / "backtest.json", backtest(counts, options, ["aggregate", "stacked"]))
    atomic_write_json(run / "loss.json", loss_json())
    return run


def loss_json() -> dict:
    """A loss law over 6 checkpoints whose irreducible loss (0.05) lies far below the measured losses (~1)."""
    from pipeline.forecast.loss_forecast import LossFitSettings, loss_forecast_json

    compute = np.geomspace(1e19, 1e21, 6)
    noise = np.random.default_rng(0).normal(0, 0.01, 6)
    rows = [{"checkpoint": f"m{i}", "compute": float(c), "mean_loss": float((1.2 * (c / 1e22) ** -0.05 + 0.05)
                                                                          * np.exp(e))}
            for i, (c, e) in enumerate(zip(compute, noise))]
    return loss_forecast_json(rows, "big", 1e22, LossFitSettings(bootstrap=60))


@pytest.fixture(scope="module")
def figures(run_dir):
    """name -> the matplotlib Figure each maker saved (kept after saving, to look at)."""
    from pipeline.report import figures as module, figures_atlas, figures_loss
    from pipeline.report.inputs import load_run
    from pipeline.report.style import save_figure

    kept = {}

    def keep(fig, path):
        kept[Path(path).stem] = fig
        return save_figure(fig, path)

    patch = pytest.MonkeyPatch()
    for mod in (module, figures_atlas, figures_loss):
        patch.setattr(mod, "save_figure", keep)
    try:
        module.all_figures(load_run(run_dir), run_dir / "figures")
    finally:
        patch.undo()
    return kept


def visible_axes(fig):
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


def test_bucket_figure_draws_only_forecastable_buckets_and_names_the_rest(figures, run_dir):
    import json

    buckets = json.loads((run_dir / "forecast.json").read_text())["buckets"]
    fig = figures["buckets"]
    panels = [ax for ax in visible_axes(fig) if ax.get_title().startswith("bucket")]
    assert len(panels) == sum(1 for b in buckets if not b.get("error")) == 2
    assert all(ax.get_ylim() != (0.0, 1.0) for ax in panels)
    assert "not drawn: buckets 3, 4, 5" in fig._suptitle.get_text()


def test_every_bucket_panel_has_x_tick_labels(figures):
    fig = figures["buckets"]
    fig.canvas.draw()
    for ax in visible_axes(fig):
        assert [t.get_text() for t in ax.get_xticklabels() if t.get_visible() and t.get_text()], ax.get_title()


def test_actual_is_beside_the_forecast_not_behind_it(figures):
    ax = figures["capability"].axes[0]
    star = next(line for line in ax.get_lines() if line.get_marker() == "*")
    diamond = next(line for line in ax.get_lines() if line.get_marker() == "D")
    assert star.get_xdata()[0] != diamond.get_xdata()[0] and star.get_zorder() > diamond.get_zorder()


def test_inset_enlarges_at_least_min_zoom(figures):
    from pipeline.report.figures import MIN_ZOOM

    ax = figures["capability"].axes[0]
    insets = [c for c in ax.child_axes if not hasattr(c, "_orientation")]   # not the secondary axes
    assert len(insets) == 1
    main, inset = np.ptp(ax.get_ylim()), np.ptp(insets[0].get_ylim())
    assert main / inset >= MIN_ZOOM
    star = next(line for line in insets[0].get_lines() if line.get_marker() == "*")
    lo, hi = insets[0].get_ylim()
    assert lo < star.get_ydata()[0] < hi


def test_capability_legend_covers_no_data(figures):
    fig = figures["capability"]
    fig.canvas.draw()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent()
    assert not legend.overlaps(ax.get_window_extent())


def test_atlas_axis_ends_near_the_target_and_labels_do_not_overlap(figures):
    fig = figures["atlas"]
    fig.canvas.draw()
    overview = fig.axes[0]
    assert overview.get_xlim()[1] <= 1.5          # the target is at 1 (normalised compute)
    labels = [t for t in overview.texts if t.get_text().startswith("HumanEval/")]
    assert len(labels) >= 10
    from matplotlib.text import Text

    boxes = [Text.get_window_extent(t).shrunk(0.98, 0.9) for t in labels]   # the text itself, not its connector
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_backtest_points_name_the_held_out_checkpoint(figures, run_dir):
    ax = figures["backtest"].axes[0]
    assert any("starcoderbase-15b-lora" in t.get_text() for t in ax.texts)


def test_loss_axis_fits_the_data_and_draws_the_laws_band(figures, run_dir):
    import json

    loss = json.loads((run_dir / "loss.json").read_text())
    ax = figures["loss"].axes[0]
    measured = [p["mean_loss"] for p in loss["points"]]
    lo, hi = ax.get_ylim()
    assert lo > loss["c"] and (hi - lo) < 3 * (max(measured) - min(measured) + np.ptp(loss["prediction"]["interval"]))
    assert ax.collections and len(loss["curve"]) >= 10      # the fill_between band, from the stored curve
    assert any("below the axes" in t.get_text() for t in ax.get_legend().get_texts())
