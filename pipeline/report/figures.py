"""The report's figures (matplotlib, PNG): capability, per-bucket capability, loss, per-problem atlas, backtest.

Each ``*_figure(run, out_dir)`` returns the PNG's path, or None when the run holds no data for it.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pipeline.report.fields import comparison, interval, level_label, level_of, number, pair
from pipeline.report.document import fmt, plural
from pipeline.report.inputs import RunInputs
from pipeline.report.style import (ACTUAL_COLOR, DODGE, EXCLUDED_COLOR, FIT_COLOR, FORECAST_COLOR, X_LABEL,
                                    Y_LABEL, flops_axis, pass_rate_axis, pyplot, save_figure)

# ---------------------------------------------------------------- capability data

def capability_points(forecast: dict) -> list[dict]:
    """Per-checkpoint points of a forecast (or a bucket's panel): x (normalised compute), y, interval, used, name."""
    out = [{"x": p["normalized_compute"], "y": p["mean_log_pass_rate"], "name": p["checkpoint"],
            "interval": interval(p), "used": p["used_in_fit"]}
           for p in forecast.get("points", []) if not p.get("is_target") and p["mean_log_pass_rate"] is not None]
    return sorted(out, key=lambda p: p["x"])


def law_curve(forecast: dict, xs: np.ndarray) -> np.ndarray:
    """−α·x^(−k) on the normalised axis (the target at x = 1)."""
    return -forecast["alpha"] * xs ** (-forecast["k"])


def stored_band(forecast: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None] | None:
    """(x, lo, hi, centre) of the fit's own interval band (forecast["curve"]); the centre is None when it strays
    outside the band."""
    rows = sorted((r["normalized_compute"], r["value"], pair(r["interval"])) for r in forecast.get("curve") or [])
    if len(rows) < 2:
        return None
    x, lo, hi = (np.array([r[0] for r in rows]), np.array([r[2][0] for r in rows]), np.array([r[2][1] for r in rows]))
    return x, lo, hi, _inside_or_none(np.array([r[1] for r in rows]), lo, hi)


def _inside_or_none(mid: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray | None:
    """The stored centre line, unless it strays outside its own band (then the law is drawn instead)."""
    slack = 0.05 * (hi - lo) + 1e-9
    inside = (mid >= lo - slack) & (mid <= hi + slack)
    if inside.mean() >= 0.9:
        return mid
    import sys

    print("capforecast report: warning: forecast.json's curve centre lies outside its own interval band at "
          f"{int((~inside).sum())} of {len(mid)} points; drawing no centre line "
          "(a fit-stage bug worth reporting)", file=sys.stderr)
    return None


def _draw_capability(ax, forecast: dict, title: str) -> bool:
    """Draw one capability panel; False when there is nothing to draw."""
    points = capability_points(forecast)
    prediction = forecast.get("prediction") or {}
    value, band = number(prediction.get("value")), interval(prediction)
    if not points and value is None:
        return False
    level = level_label(level_of(forecast))
    xs_all = [p["x"] for p in points] + [1.0]
    lo_x, hi_x = min(xs_all) / 2.0, 2.0
    stored = stored_band(forecast)
    if stored is not None:
        x, lo, hi, mid = stored
        ax.fill_between(x, lo, hi, color=FIT_COLOR, alpha=0.18, lw=0, label=f"fit, {level} band")
        if mid is not None:
            ax.plot(x, mid, color=FIT_COLOR, lw=1.8, label="fitted law  −α·C^(−k)")
    if ((stored is None or stored[3] is None) and forecast.get("alpha") is not None
            and (stored is None or forecast.get("method") in (None, "aggregate"))):
        xs = np.geomspace(lo_x, 1.0, 200)
        ax.plot(xs, law_curve(forecast, xs), color=FIT_COLOR, lw=1.8, label="fitted law  −α·C^(−k)")
    for used in (True, False):
        group = [p for p in points if p["used"] == used]
        if not group:
            continue
        color = FIT_COLOR if used else EXCLUDED_COLOR
        label = "checkpoints (fit)" if used else "checkpoints (not in fit)"
        if not any(p["interval"] for p in group):   # no bars drawn, so none in the legend either
            ax.plot([p["x"] for p in group], [p["y"] for p in group], "o" if used else "s", color=color, ms=6,
                    mfc="white" if not used else color, ls="none", label=label, zorder=3)
            continue
        yerr = np.array([[p["y"] - p["interval"][0], p["interval"][1] - p["y"]] if p["interval"] else [0, 0]
                         for p in group]).T
        ax.errorbar([p["x"] for p in group], [p["y"] for p in group], yerr=np.clip(yerr, 0, None),
                    fmt="o" if used else "s", color=color, ms=6, capsize=3, mfc="white" if not used else color,
                    label=label, zorder=3)
    actual, judged_by, same_problems = comparison(forecast)
    dodge = DODGE if actual is not None and value is not None else 1.0   # side by side at the target, never hidden
    if value is not None:
        yerr = [[value - band[0]], [band[1] - value]] if band else None
        ax.errorbar([1.0 / dodge], [value], yerr=yerr, fmt="D", color=FORECAST_COLOR, mfc="white", mew=2, ms=11,
                    capsize=7, lw=2, label=f"forecast, {level} interval", zorder=4)
    if same_problems and judged_by:
        mid = (judged_by[0] + judged_by[1]) / 2
        ax.errorbar([1.25], [mid], yerr=[[mid - judged_by[0]], [judged_by[1] - mid]], fmt="none",
                    ecolor=EXCLUDED_COLOR, capsize=4, lw=2, label="forecast on the problems the target solved")
    if actual is not None:
        ax.plot([dodge], [actual], marker="*", color=ACTUAL_COLOR, mec="white", mew=0.8, ms=14, ls="none",
                label="actual (target)", zorder=6)
    ax.set_xscale("log")
    ax.set_xlim(lo_x, hi_x)
    ax.set_title(title)
    return True


def capability_figure(run: RunInputs, out_dir: Path) -> Path | None:
    """Figure 1 of the report (GPT-4's Fig. 2): mean log pass rate against normalised compute."""
    forecast = run.forecast or {}
    if run.forecast_error:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 5.6))
    n_problems = len(forecast["problems"]) or None
    title = f"Capability forecast for {run.target_name}" + (f" — {plural(n_problems, 'problem')}" if n_problems else "")
    if not _draw_capability(ax, forecast, title):
        plt.close(fig)
        return None
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(Y_LABEL)
    flops_axis(ax, run.target_compute)
    pass_rate_axis(ax)
    inset = _target_inset(ax, forecast)
    # outside, right of the pass-rate axis: inside, any corner can cover a checkpoint or the band
    ax.legend(loc="upper left", bbox_to_anchor=(1.13, 0.42 if inset else 1.0), frameon=False)
    return save_figure(fig, out_dir / "capability.png")


MIN_ZOOM = 2.5          # an inset that enlarges less than this shows nothing the main axes do not


def _target_inset(ax, forecast: dict) -> bool:
    """The forecast against the actual, enlarged around the two (the interval's ends may run off it, and are
    given in numbers), when the main axes show them too small to tell apart."""
    prediction = forecast.get("prediction") or {}
    value, band = number(prediction.get("value")), interval(prediction)
    actual, judged_by, same_problems = comparison(forecast)
    if value is None or band is None or actual is None:
        return False
    shown = [value, actual] + ([sum(judged_by) / 2] if same_problems and judged_by else [])
    half = max(0.75 * (max(shown) - min(shown)), 0.03 * (band[1] - band[0]), 1e-4)
    centre = (max(shown) + min(shown)) / 2
    zoom = (ax.get_ylim()[1] - ax.get_ylim()[0]) / (2 * half)
    if zoom < MIN_ZOOM:
        return False
    inset = ax.inset_axes([1.2, 0.55, 0.3, 0.36])    # beside the axes, right of the pass-rate axis: covers no data
    for side in ("top", "right"):
        inset.spines[side].set_visible(True)
    inset.errorbar([-0.3], [value], yerr=[[value - band[0]], [band[1] - value]], fmt="D", color=FORECAST_COLOR,
                   mfc="white", mew=2, ms=8, capsize=6, lw=2)
    if same_problems and judged_by:
        mid = (judged_by[0] + judged_by[1]) / 2
        inset.errorbar([0.7], [mid], yerr=[[mid - judged_by[0]], [judged_by[1] - mid]], fmt="none",
                       ecolor=EXCLUDED_COLOR, capsize=4, lw=2)
    inset.plot([0.3], [actual], "*", color=ACTUAL_COLOR, mec="white", mew=0.8, ms=14)
    inset.set_ylim(centre - half, centre + half)
    inset.set_xlim(-1, 1.2 if same_problems else 1)
    inset.set_xticks([])
    inset.tick_params(labelsize=8)
    inside = judged_by is not None and judged_by[0] <= actual <= judged_by[1]
    lo, hi = judged_by or band
    inset.set_title(f"at the target, ×{zoom:.0f}: forecast {fmt(value)}, actual {fmt(actual)}\n"
                    + (f"inside ✓ the interval [{fmt(lo)}, {fmt(hi)}]" if inside
                       else f"OUTSIDE ✗ the interval [{fmt(lo)}, {fmt(hi)}]"),
                    fontsize=8.5, color=FIT_COLOR if inside else FORECAST_COLOR)
    return True


def bucket_points(run: RunInputs, problems: list[str], models: set[str]) -> list[dict]:
    """Measured E_P[log(c/n)] per fit checkpoint over one bucket's problems (cheap: from pass_counts.csv)."""
    from pipeline.forecast.estimate import mean_log_pass_rate
    from pipeline.report.tables import counts_by_checkpoint

    target_c, wanted, out = run.target_compute, set(problems), []
    if not target_c:
        return out
    for name, g in counts_by_checkpoint(run.counts).items():
        if name not in models:
            continue
        keep = np.array([t in wanted for t in g["task_ids"]]) & (g["passed"] > 0) & (g["n"] > 0)
        if keep.sum() == len(wanted) and keep.any():
            y = float(mean_log_pass_rate(g["passed"][keep], g["n"][keep]))
            out.append({"checkpoint": name, "normalized_compute": g["compute"] / target_c,
                        "mean_log_pass_rate": y, "used_in_fit": True})
    return out


def buckets_figure(run: RunInputs, out_dir: Path) -> Path | None:
    """Small multiples: the capability forecast per difficulty bucket (easiest first), one panel per bucket that
    has a forecast; the others are named in the title with the reason, never drawn as empty axes."""
    forecast = run.forecast or {}
    buckets = forecast.get("buckets", [])
    if run.forecast_error or not buckets:
        return None
    models = set(forecast["models"])
    level = level_label(level_of(forecast))
    drawable, skipped = [], {}
    for bucket in buckets:
        problems = bucket["problems"]
        rates = pair(bucket["pass_rate_range"])
        members = bucket.get("members") or problems
        title = f"bucket {bucket['bucket']}: " + (plural(len(problems), "problem") if len(members) == len(problems)
                                                  else f"{len(problems)} of {len(members)} problems qualify")
        if rates:
            title += f"\nfit-model pass rate {rates[0]:.0%}–{rates[1]:.0%}"
        panel = {"points": bucket_points(run, problems, models), "alpha": bucket.get("alpha"),
                 "k": bucket.get("k"), "prediction": bucket.get("prediction") or {},
                 "actual": bucket.get("actual"), "method": forecast["method"],
                 "curve": bucket.get("curve")}   # the bucket's own band, from the same draws as its forecast
        has_data = capability_points(panel) or number(panel["prediction"].get("value")) is not None
        if bucket.get("error") or not has_data:
            skipped.setdefault(str(bucket.get("error") or "no data"), []).append(str(bucket["bucket"]))
        else:
            drawable.append((panel, title))
    if not drawable:
        return None
    plt = pyplot()
    cols = min(3, len(drawable))
    rows = math.ceil(len(drawable) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows + 0.9), squeeze=False, layout="constrained")
    xs = [p["x"] for panel, _ in drawable for p in capability_points(panel)] + [1.0]
    for k, (ax, (panel, title)) in enumerate(zip(axes.flat, drawable)):
        _draw_capability(ax, panel, title)
        ax.set_xlim(min(xs) / 2.0, 2.0)                   # one x range for every panel, each with its tick labels
        ax.title.set_fontsize(11)
        if k + cols >= len(drawable):                     # nothing drawn below this panel
            ax.set_xlabel("compute ÷ target's (log)")
        if k % cols == 0:
            ax.set_ylabel("mean log pass rate")
    for ax in list(axes.flat)[len(drawable):]:
        ax.set_visible(False)
    handles, labels = next((a.get_legend_handles_labels() for a in axes.flat if a.get_legend_handles_labels()[0]),
                           ([], []))
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 3), frameon=False)
    from pipeline.forecast.buckets import MIN_BUCKET_PROBLEMS

    asked = (forecast.get("options") or {}).get("buckets")
    title = (f"Forecast per difficulty bucket ({level} intervals; 1 = easiest) — {len(drawable)} of "
             f"{plural(len(buckets), 'bucket')} forecastable"
             + (f" ({asked} asked for; buckets with fewer than {MIN_BUCKET_PROBLEMS} qualifying problems were merged "
                f"with a neighbour)" if isinstance(asked, int) and asked > len(buckets) else ""))
    if skipped:
        title += "\n" + _wrap("not drawn: " + "; ".join(
            f"bucket{'s' if len(ids) > 1 else ''} {', '.join(ids)} ({reason})" for reason, ids in skipped.items()),
            48 * cols + 10, lines=3)
    fig.suptitle(title, fontsize=12)
    return save_figure(fig, out_dir / "buckets.png")


def _wrap(text: str, width: int, lines: int = 4) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)[:lines])


def figure_makers() -> dict:
    """Figure name -> maker, in the report's order."""
    from pipeline.report.figures_atlas import atlas_figure
    from pipeline.report.figures_loss import backtest_figure, loss_figure

    return {"capability": capability_figure, "buckets": buckets_figure, "loss": loss_figure,
            "atlas": atlas_figure, "backtest": backtest_figure}


def all_figures(run: RunInputs, out_dir: Path) -> dict[str, Path | None]:
    """Every figure the run has data for; a figure that fails to draw is reported on stderr, not fatal."""
    import sys

    made: dict[str, Path | None] = {}
    for name, maker in figure_makers().items():
        stale = out_dir / f"{name}.png"
        try:
            made[name] = maker(run, out_dir)
        except Exception as exc:  # a figure must never cost the reader the whole report
            print(f"capforecast report: warning: figure '{name}' not drawn ({type(exc).__name__}: {exc})",
                  file=sys.stderr)
            made[name] = None
        if made[name] is None and stale.exists():
            stale.unlink()  # never leave a figure from an earlier report that no longer matches the data
    return made
