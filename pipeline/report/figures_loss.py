"""Loss (the GPT-4 report's Figure 1) and backtest figures."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pipeline.report.fields import actual_value, interval, level_label, level_of, number, pair
from pipeline.report.inputs import RunInputs
from pipeline.report.style import (ACTUAL_COLOR, DODGE, EXCLUDED_COLOR, FIT_COLOR, FORECAST_COLOR, X_LABEL,
                                   flops_axis, pyplot, save_figure)

LOSS_LABEL = "final loss on held-out code  (nats per token)"


def loss_points(loss: dict) -> list[dict]:
    """Measured (x = compute normalised by the target's, loss, used) per checkpoint other than the target."""
    target = loss["target"]
    return sorted(({"x": p["compute"] / target["compute"], "y": p["mean_loss"], "used": p["used_in_fit"]}
                   for p in loss["points"] if p["checkpoint"] != target["name"]), key=lambda p: p["x"])


def loss_curve(loss: dict, xs: np.ndarray) -> np.ndarray:
    """a·(C / C_target)^b + c on the normalised axis."""
    return loss["a"] * xs ** loss["b"] + loss["c"]


def loss_figure(run: RunInputs, out_dir: Path) -> Path | None:
    """L(C) for the checkpoints, the fitted a·C^b + c with its band, the forecast and the actual loss."""
    loss = run.loss
    if not loss or "error" in loss:
        return None
    points = loss_points(loss)
    prediction = loss["prediction"]
    value, band = number(prediction["value"]), interval(prediction)
    if not points and value is None:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 5.2))
    level = level_label(level_of(loss))
    lo_x = min([p["x"] for p in points] + [1.0]) / 2.0
    shown = [p["y"] for p in points] + [v for v in (value, actual_value(loss)) if v is not None] + list(band or [])
    band_rows = [(r["normalized_compute"], *pair(r["interval"])) for r in loss.get("curve") or []]
    if band_rows:
        ax.fill_between([r[0] for r in band_rows], [r[1] for r in band_rows], [r[2] for r in band_rows],
                        color=FIT_COLOR, alpha=0.18, lw=0, label=f"fit, {level} band (the law's own uncertainty)")
        shown += [r[1] for r in band_rows] + [r[2] for r in band_rows]
    xs = np.geomspace(lo_x, 1.0, 200)
    ax.plot(xs, loss_curve(loss, xs), color=FIT_COLOR, lw=1.8, label="fitted  L(C) = a·C^b + c")
    pad = 0.08 * (max(shown) - min(shown)) or 0.05 * max(shown)
    y_lo, y_hi = min(shown) - pad, max(shown) + pad     # the data, band and forecast fill the axes
    c_value = loss["c"]
    if y_lo <= c_value <= y_hi:
        ax.axhline(c_value, color=EXCLUDED_COLOR, ls="--", lw=1, label=f"irreducible loss c = {c_value:.3g}")
    else:   # far below the data: drawing it would squash them into the top of the axes
        ax.plot([], [], ls="--", color=EXCLUDED_COLOR, lw=1, label=f"irreducible loss c = {c_value:.3g} (below the axes)")
    ax.set_ylim(y_lo, y_hi)
    for used in (True, False):
        group = [p for p in points if p["used"] == used]
        if group:
            ax.plot([p["x"] for p in group], [p["y"] for p in group], "o" if used else "s",
                    color=FIT_COLOR if used else EXCLUDED_COLOR, mfc=None if used else "white", ms=7,
                    label="checkpoints (fit)" if used else "checkpoints (not in fit)", zorder=3)
    actual = actual_value(loss)
    dodge = DODGE if actual is not None and value is not None else 1.0   # side by side, never one behind the other
    if value is not None:
        yerr = [[value - band[0]], [band[1] - value]] if band else None
        ax.errorbar([1.0 / dodge], [value], yerr=yerr, fmt="D", color=FORECAST_COLOR, mfc="white", mew=2, ms=11,
                    capsize=7, lw=2, label=f"forecast, {level} prediction interval", zorder=4)
    if actual is not None:
        ax.plot([dodge], [actual], "*", color=ACTUAL_COLOR, mec="white", mew=0.8, ms=14, label="actual (target)",
                zorder=6)
    ax.set_xscale("log")
    ax.set_xlim(lo_x, 2.0)
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(LOSS_LABEL)
    ax.set_title(f"Loss forecast for {run.target_name}")
    flops_axis(ax, run.target_compute)
    # below the axes: inside, any corner can cover the forecast's interval or the actual at the right edge
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, frameon=False, fontsize=9)
    return save_figure(fig, out_dir / "loss.png")


METHOD_STYLE = [("o", "#1f77b4"), ("s", "#ff7f0e"), ("^", "#2ca02c"), ("D", "#9467bd")]


def backtest_figure(run: RunInputs, out_dir: Path) -> Path | None:
    """Forecast error (forecast − actual) against extrapolation factor; filled = actual inside the interval."""
    from pipeline.report.stored import backtest_rows

    rows = [r for r in backtest_rows(run) if r["factor"] and r["error"] is not None and r["failure"] is None]
    if not rows:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 5))
    level = level_label(level_of((run.backtest or {}).get("options")) or level_of(run.forecast))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    used = (run.forecast or {}).get("method")
    titles = []
    for (marker, color), method in zip(METHOD_STYLE * 3, methods):
        group = [r for r in rows if r["method"] == method]
        shift = 1.0 + 0.04 * (methods.index(method) - (len(methods) - 1) / 2)   # side by side, not on top
        for covered in (True, False, None):
            part = [r for r in group if r["covered"] is covered]
            if not part:
                continue
            yerr = np.array([[r["error"] - (r["band"][0] - r["actual"]), (r["band"][1] - r["actual"]) - r["error"]]
                             if r["band"] and r["actual"] is not None else [0, 0] for r in part]).T
            ax.errorbar([r["factor"] * shift for r in part], [r["error"] for r in part],
                        yerr=np.clip(yerr, 0, None), fmt=marker, color=color, ms=7, capsize=3, mew=1.5,
                        mfc=color if covered else "white", alpha=0.9, zorder=3)
        known = [r["covered"] for r in group if r["covered"] is not None]
        name = method or "forecast"
        ax.plot([], [], marker, color=color, label=name + (" (used for the target)" if method == used else ""))
        if known:
            titles.append(f"{name}: {sum(known)}/{len(known)} inside")
    ax.plot([], [], "o", color="#666666", mfc="white", label=f"hollow = actual outside the {level} interval")
    _name_held_out(ax, rows)
    ax.axhline(0.0, color=ACTUAL_COLOR, lw=1)
    factors = [r["factor"] for r in rows]
    _factor_ticks(ax, min(factors) / 1.5, max(factors) * 1.5)
    ax.set_xlabel("extrapolation factor  (held-out compute ÷ largest compute in its fit, log scale)")
    ax.set_ylabel("forecast − actual\n(mean log pass rate)")
    ax.set_title(("Backtest, " + level + " intervals — " + "; ".join(titles) if titles else "Backtest")
                 + "\nabove each column: the checkpoint held out and forecast from the smaller ones (m = how many "
                 "were held out)", fontsize=11)
    ax.margins(y=0.12)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, frameon=False, fontsize=9)  # never on a bar
    return save_figure(fig, out_dir / "backtest.png")


def _name_held_out(ax, rows: list[dict]) -> None:
    """Name the held-out checkpoint above each column of points (with m when more were held out with it);
    labels of columns closer than 0.15 decade are staggered upwards so they do not overprint."""
    columns: dict[tuple, list[dict]] = {}
    for r in rows:
        columns.setdefault((r["name"], r["holdout"]), []).append(r)
    previous, lift = None, 0
    for (name, holdout), group in sorted(columns.items(), key=lambda item: item[1][0]["factor"]):
        factor = group[0]["factor"]
        lift = lift + 1 if previous is not None and math.log10(factor / previous) < 0.15 and lift < 2 else 0
        previous = factor
        top = max(max(r["error"], (r["band"][1] - r["actual"]) if r["band"] and r["actual"] is not None
                      else r["error"]) for r in group)
        label = name + (f" (m={holdout})" if holdout and holdout > 1 else "")
        ax.annotate(label, (factor, top), xytext=(0, 5 + 11 * lift), textcoords="offset points", ha="center",
                    va="bottom", fontsize=8, color="#333333")


def _factor_ticks(ax, lo: float, hi: float) -> None:
    """Plain '3×', '10×', '100×' ticks on a log axis (no 3×10^0 clutter)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    ticks = [m * 10.0 ** e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
             for m in (1, 2, 5) if lo <= m * 10.0 ** e <= hi]
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
    ax.xaxis.set_minor_formatter(NullFormatter())
