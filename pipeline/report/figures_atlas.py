"""The per-problem atlas: every problem's pass rate against compute, problems that get worse with scale in red.

Drawn as one axes with a hand-made grid of cells (LineCollection), because 164 matplotlib subplots take
~10 s to draw on a 2-core machine; this takes well under a second.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pipeline.report.document import plural
from pipeline.report.inputs import RunInputs
from pipeline.report.style import EXCLUDED_COLOR, FIT_COLOR, FORECAST_COLOR, X_LABEL, pyplot, save_figure

FALLING_FILL = "#fde0dc"


def problem_grid(run: RunInputs):
    """(checkpoints, normalised compute [ckpt], task_ids, rate [ckpt, problem] with NaN where unsampled)."""
    from pipeline.report.tables import counts_by_checkpoint

    grouped = counts_by_checkpoint(run.counts)
    target_c = run.target_compute or max(g["compute"] for g in grouped.values())
    tasks = sorted({t for g in grouped.values() for t in g["task_ids"]}, key=_task_key)
    column = {t: i for i, t in enumerate(tasks)}
    rate = np.full((len(grouped), len(tasks)), np.nan)
    for j, g in enumerate(grouped.values()):
        ok = g["n"] > 0
        rate[j, [column[t] for t, keep in zip(g["task_ids"], ok) if keep]] = g["passed"][ok] / g["n"][ok]
    x = np.array([g["compute"] for g in grouped.values()]) / target_c
    return list(grouped), x, tasks, rate


def _task_key(task_id: str):
    head, _, tail = task_id.rpartition("/")
    return (head, int(tail)) if tail.isdigit() else (task_id, -1)


def falling_set(run: RunInputs) -> set[str]:
    """The fit's own list of problems whose pass rate falls with scale (forecast["non_monotone"])."""
    return set((run.forecast or {}).get("non_monotone", []))


def atlas_figure(run: RunInputs, out_dir: Path) -> Path | None:
    """Overview (all problems overlaid) above an atlas of one small cell per problem."""
    if not run.counts:
        return None
    checkpoints, x, tasks, rate = problem_grid(run)
    if len(checkpoints) < 2:
        return None
    falling = falling_set(run)
    used = set((run.forecast or {}).get("problems") or [])
    target = run.target_name
    fit_rows = [j for j, c in enumerate(checkpoints) if c != target]
    plt = pyplot()
    cols = min(16, max(4, math.ceil(math.sqrt(len(tasks) * 1.6))))
    rows = math.ceil(len(tasks) / cols)
    fig = plt.figure(figsize=(13, 4.6 + 0.62 * rows))
    mean_height = (4.2 + 0.62 * rows) / 2
    grid = fig.add_gridspec(2, 1, height_ratios=[4.2, 0.62 * rows], hspace=1.5 / mean_height)  # ~1.5 inch gap
    _overview(fig.add_subplot(grid[0]), x, rate, tasks, falling, fit_rows, checkpoints, target)
    _cells(fig.add_subplot(grid[1]), x, rate, tasks, falling, used, fit_rows, cols, rows, checkpoints, target)
    return save_figure(fig, out_dir / "atlas.png")


def spread(ys: list[float], gap: float, lo: float, hi: float) -> list[float]:
    """Label heights near ``ys`` (same order) at least ``gap`` apart inside [lo, hi], so no two labels overprint."""
    if not ys:
        return []
    order = sorted(range(len(ys)), key=lambda i: ys[i])
    placed = [float(np.clip(np.nan_to_num(ys[i], nan=lo), lo, hi)) for i in order]
    for k in range(1, len(placed)):                       # push up ...
        placed[k] = max(placed[k], placed[k - 1] + gap)
    overflow = placed[-1] - hi
    if overflow > 0:                                      # ... then back down from the top if that ran past hi
        placed[-1] = hi
        for k in range(len(placed) - 2, -1, -1):
            placed[k] = min(placed[k], placed[k + 1] - gap)
    out = [0.0] * len(ys)
    for rank, i in enumerate(order):
        out[i] = placed[rank]
    return out


def _overview(ax, x, rate, tasks, falling, fit_rows, checkpoints, target) -> None:
    from matplotlib.collections import LineCollection

    xs = x[fit_rows]
    lines = [np.column_stack([xs, rate[fit_rows, i]]) for i, t in enumerate(tasks) if t not in falling]
    ax.add_collection(LineCollection(lines, colors=EXCLUDED_COLOR, linewidths=0.7, alpha=0.35,
                                     label=f"one problem ({len(lines)})"))
    last = fit_rows[-1]
    marked = [(i, t) for i, t in enumerate(tasks) if t in falling]
    for i, _ in marked:
        ax.plot(xs, rate[fit_rows, i], color=FORECAST_COLOR, lw=1.8, marker="o", ms=3)
    _label_falling(ax, x[last], [(t, rate[last, i], np.nanmax(rate[fit_rows, i]) - rate[last, i]) for i, t in marked])
    ax.plot(xs, np.nanmedian(rate[fit_rows], axis=1), color=FIT_COLOR, lw=2.5, label="median over problems")
    if len(fit_rows) < len(checkpoints):
        t_row = checkpoints.index(target)
        ax.plot(np.full(len(tasks), x[t_row]), rate[t_row], "_", color=EXCLUDED_COLOR, ms=8,
                label=f"{target} (target), each problem")
    if falling:
        ax.plot([], [], color=FORECAST_COLOR, lw=1.8, marker="o", ms=3,
                label=f"pass rate falls with scale ({len(falling)})")
    ax.set_xscale("log")
    ax.set_xlim(x.min() / 1.5, x.max() * 1.25)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel("pass rate  (fraction of samples passing)")
    ax.set_title(f"Per-problem pass rate against compute — {plural(len(tasks), 'problem')}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.11 if falling else 1.005, 1.0), frameon=True, fontsize=8)


LABEL_PT = 10.5   # vertical room per label in the overview's right margin


def _label_falling(ax, x_last: float, marked: list[tuple[str, float, float]]) -> None:
    """Name the falling problems in the right margin, one label per LABEL_PT points, joined to each line's end;
    when they do not all fit, the largest falls are named and the rest counted (all are red in the atlas)."""
    if not marked:
        return
    height_pt = ax.get_position().height * ax.figure.get_figheight() * 72
    room = max(1, int(height_pt // LABEL_PT))
    shown = sorted(marked, key=lambda m: -np.nan_to_num(m[2]))[:room if len(marked) <= room else room - 1]
    y0, y1 = ax.get_ylim()
    frac = [(float(np.nan_to_num(y, nan=0.0)) - y0) / (y1 - y0) for _, y, _ in shown]
    gap = LABEL_PT / height_pt
    for (task, y, _), at in zip(shown, spread(frac, gap=gap, lo=gap / 2, hi=1 - gap / 2)):
        ax.annotate(task, (x_last, y), xytext=(1.01, at), textcoords="axes fraction", fontsize=8,
                    color=FORECAST_COLOR, va="center", annotation_clip=False,
                    arrowprops={"arrowstyle": "-", "color": FORECAST_COLOR, "lw": 0.5, "alpha": 0.5})
    if len(shown) < len(marked):
        ax.annotate(f"+{len(marked) - len(shown)} more (red cells below)", (1.01, gap / 2),
                    xycoords="axes fraction", fontsize=8, color=FORECAST_COLOR, va="center")


def _cells(ax, x, rate, tasks, falling, used, fit_rows, cols, rows, checkpoints, target) -> None:
    from matplotlib.collections import LineCollection
    from matplotlib.patches import Rectangle

    lx = np.log(x)
    span = max(lx.max() - lx.min(), 1e-9)
    u = 0.08 + 0.84 * (lx - lx.min()) / span            # x within a cell, 0..1
    normal, red, dashed = [], [], []
    for i, task in enumerate(tasks):
        col, row = i % cols, rows - 1 - i // cols
        if task in falling:
            ax.add_patch(Rectangle((col, row), 1, 1, color=FALLING_FILL, lw=0))
        ax.add_patch(Rectangle((col + 0.04, row + 0.12), 0.92, 0.62, fill=False, lw=0.3, ec="#c8c8c8"))
        ys = rate[fit_rows, i]
        keep = ~np.isnan(ys)
        line = np.column_stack([col + u[fit_rows][keep], row + 0.12 + 0.62 * ys[keep]])
        (red if task in falling else normal if (not used or task in used) else dashed).append(line)
        if len(fit_rows) < len(checkpoints) and not np.isnan(rate[checkpoints.index(target), i]):
            ax.plot(col + u[checkpoints.index(target)], row + 0.12 + 0.62 * rate[checkpoints.index(target), i],
                    ".", color="#111111", ms=3)
        ax.text(col + 0.5, row + 0.8, task.rpartition("/")[2] or task, ha="center", va="bottom", fontsize=6.5,
                color=FORECAST_COLOR if task in falling else "#333333")
    ax.add_collection(LineCollection(normal, colors=FIT_COLOR if used else "#555555", linewidths=0.9))
    ax.add_collection(LineCollection(dashed, colors=EXCLUDED_COLOR, linewidths=0.9, linestyles="dashed"))
    ax.add_collection(LineCollection(red, colors=FORECAST_COLOR, linewidths=1.4))
    ax.set_xlim(0, cols)
    ax.set_ylim(0, rows)
    ax.set_axis_off()
    key = ("Blue: in the fit's subset; grey dashed: excluded; " if used else "No fit, so no subset; ")
    ax.set_title("Atlas: one cell per problem (number = task id). In each cell x = log compute from the smallest "
                 "checkpoint to the target, y = pass rate 0 (bottom) to 1 (top).\n" + key +
                 "red on pink: pass rate falls with scale; black dot: the target.", fontsize=9, loc="left")
