"""The figures' shared look: colours, axis labels, the pyplot set-up, saving, and the secondary axes.

Every figure module imports this and nothing else from its siblings' drawing code.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

DPI = 130
FORECAST_COLOR = "#d62728"
ACTUAL_COLOR = "#111111"
FIT_COLOR = "#1f77b4"
EXCLUDED_COLOR = "#9a9a9a"
X_LABEL = "training compute ÷ target's compute  (log scale; target = 1)"
Y_LABEL = "mean log pass rate  E_P[ln pass rate]"
DODGE = 1.05   # the forecast and the actual are drawn this factor left and right of the target's compute


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 11, "axes.titlesize": 13, "axes.labelsize": 11,
                         "legend.fontsize": 9, "axes.grid": True, "grid.alpha": 0.3,
                         "axes.spines.top": False, "axes.spines.right": False})
    return plt


def save_figure(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight", pad_inches=0.08, metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def flops_axis(ax, target_compute: float | None) -> None:
    """A top axis in raw FLOPs for a normalised-compute x axis."""
    if not target_compute:
        return
    top = ax.secondary_xaxis("top", functions=(lambda x: x * target_compute, lambda f: f / target_compute))
    top.set_xlabel("training compute (FLOPs)")


def pass_rate_axis(ax) -> None:
    """A right axis translating mean log pass rate into a geometric-mean pass rate."""
    right = ax.secondary_yaxis("right", functions=(lambda y: np.exp(np.clip(y, -50, 50)),
                                                   lambda p: np.log(np.clip(p, 1e-22, None))))
    right.set_ylabel("geometric-mean pass rate  exp(y)")
    ax.spines["right"].set_visible(False)
