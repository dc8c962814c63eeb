"""Bias of log-pass-rate estimators by simulation: PassUntil T_r (unbiased) vs fixed-n log(c/n) (biased).

    .venv/bin/python benchmarks/bench_passuntil_bias.py [--reps 200000]

For each true p: the mean error of T_r = digamma(r) - digamma(N) with its Monte Carlo standard error,
the mean of the variance estimator against the empirical variance, the expected draws r/p, and for
comparison log(c/n) with n = 200 among runs with c > 0 (the P/M rule), and how often c = 0.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.sampling.passuntil import log_p_estimate, truncation_bias, variance_estimate  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=200_000)
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    print(f"{'p':>7} {'r':>3} {'bias T_r':>10} {'MC s.e.':>8} {'E[V]/Var':>9} {'E[N]':>7} "
          f"{'bias log(c/200)':>16} {'P(c=0)':>7} {'trunc bias @B=1000':>19}")
    for p in (0.3, 0.03, 0.003):
        c = rng.binomial(200, p, size=args.reps)
        fixed = np.log(c[c > 0] / 200).mean() - np.log(p)
        for r in (1, 2, 5):
            n = r + rng.negative_binomial(r, p, size=args.reps)
            est = log_p_estimate(n, r)
            bias, se = est.mean() - np.log(p), est.std() / np.sqrt(args.reps)
            ratio = variance_estimate(n, r).mean() / est.var()
            print(f"{p:>7g} {r:>3d} {bias:>+10.4f} {se:>8.4f} {ratio:>9.3f} {n.mean():>7.0f} "
                  f"{fixed:>+16.4f} {np.mean(c == 0):>7.3f} {truncation_bias(p, r, 1000)[0]:>19.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
