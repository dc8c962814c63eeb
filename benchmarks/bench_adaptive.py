"""Samples needed by adaptive PassUntil sampling vs fixed n = 200 for the same forecast standard error.

Both designs forecast the target's mean log pass rate with the report's aggregate fit (log(-E log p)
linear in log C) on the same simulated family (pipeline.simulate, known truth) and the same problems:
those whose true pass rate is >= --p-floor at every fit checkpoint (fixed n = 200 solves them almost
always; the hard tail is left out of both, and said so). Fixed: n = 200 per cell, log(c/n), a problem
dropped in a replicate where some checkpoint never solves it (the P/M rule). Adaptive: the real planner
(pipeline.adaptive: pilot, allocation, rounds) driving simulated generation, and the real estimator
(pipeline.passuntil.estimate_cell) on draws in sample_index order; every generated sample is counted,
pilot and draws past the stop included. The adaptive design runs at several budgets; the samples it
needs for the fixed design's standard error are interpolated (log SE linear in log samples).

    .venv/bin/python benchmarks/bench_adaptive.py [--families 3] [--reps 100] [--quick]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.adaptive import Design, allocate, forecast_from_means, next_totals  # noqa: E402
from pipeline.passuntil import COMPLETE, estimate_cell  # noqa: E402
from pipeline.records import PassCount  # noqa: E402
from pipeline.simulate import FamilySpec, simulate_family  # noqa: E402

FIXED_N = 200


def fixed_design(p: np.ndarray, compute, target_compute, reps: int, rng) -> tuple[np.ndarray, int]:
    out = []
    for _ in range(reps):
        c = rng.binomial(FIXED_N, p)
        solved = (c > 0).all(axis=0)
        out.append(forecast_from_means(compute, np.log(c[:, solved] / FIXED_N).mean(axis=1), target_compute))
    return np.array(out), FIXED_N * p.size


def adaptive_once(p: np.ndarray, compute, target_compute, design: Design, rng) -> tuple[float, int, int, int]:
    """One replicate: (forecast, samples generated, rounds, truncated cells)."""
    m, k = p.shape
    length = design.pilot + design.budget + design.round_size
    seq = rng.random((m * k, length)) < p.reshape(-1, 1)
    cum = np.concatenate([np.zeros((m * k, 1), int), np.cumsum(seq, axis=1)], axis=1)
    n = np.full(m * k, design.pilot)
    names = [f"c{j}" for j in range(m)]
    counts = [PassCount(names[j], float(compute[j]), f"t{i}", int(n[j * k + i]), int(cum[j * k + i, n[j * k + i]]))
              for j in range(m) for i in range(k)]
    d = Design(**{**design.__dict__, "cells": {}})
    d.cells = allocate(counts, d)
    rule = [d.cells[(names[j], f"t{i}")] for j in range(m) for i in range(k)]
    start, start_passed, r, budget = (np.array([getattr(x, a) for x in rule]) for a in
                                      ("start", "start_passed", "r", "budget"))
    rounds = 0
    while True:
        passed = cum[np.arange(m * k), n]
        total = next_totals(n, passed, start, start_passed, r, budget, d.round_size)
        if np.all(total == n):
            break
        n, rounds = total, rounds + 1
    means, truncated = [], 0
    for j in range(m):
        values = []
        for i in range(k):
            c = j * k + i
            cell = estimate_cell(names[j], f"t{i}", seq[c, :n[c]], int(r[c]), int(budget[c]), int(start[c]))
            truncated += cell.status != COMPLETE
            values.append(cell.log_p)
        means.append(np.mean(values))
    return forecast_from_means(compute, np.array(means), target_compute), int(n.sum()), rounds, truncated


def samples_for_se(rows: list[tuple[float, float]], target_se: float) -> tuple[float, str]:
    """Samples at which the adaptive SE reaches target_se: log-log interpolation between bracketing budgets."""
    rows = sorted(rows)
    cost, se = np.log([r[0] for r in rows]), np.log([r[1] for r in rows])
    goal = np.log(target_se)
    for i in range(len(rows) - 1):
        if se[i] >= goal >= se[i + 1]:
            t = (goal - se[i]) / (se[i + 1] - se[i])
            return float(np.exp(cost[i] + t * (cost[i + 1] - cost[i]))), "interpolated"
    slope, icept = np.polyfit(cost, se, 1)
    return float(np.exp((goal - icept) / slope)), f"EXTRAPOLATED, log SE ~ {slope:.2f} log samples"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", type=int, default=3)
    ap.add_argument("--first-family", type=int, default=0, help="seed of the first simulated family")
    ap.add_argument("--reps", type=int, default=100, help="adaptive replicates per budget and family")
    ap.add_argument("--budgets", default="15,25,40,60,90,130", help="adaptive samples per cell to try")
    ap.add_argument("--p-floor", type=float, default=0.01)
    ap.add_argument("--pilot", type=int, default=5)
    ap.add_argument("--budget", type=int, default=5000, help="most sequential draws per cell")
    ap.add_argument("--quick", action="store_true", help="1 family, 30 replicates (a smoke run)")
    args = ap.parse_args()
    if args.quick:
        args.families, args.reps = 1, 30
    budgets = [float(b) for b in args.budgets.split(",")]
    rng = np.random.default_rng(20261126)
    ratios = []
    t0 = time.perf_counter()
    for seed in range(args.first_family, args.first_family + args.families):
        fam = simulate_family(FamilySpec(), seed=seed)
        keep = fam.pass_rates.min(axis=0) >= args.p_floor
        p = fam.pass_rates[:, keep]
        truth = forecast_from_means(fam.compute, np.log(p).mean(axis=1), fam.target_compute)
        fixed, fixed_cost = fixed_design(p, fam.compute, fam.target_compute, 4 * args.reps, rng)
        print(f"family {seed} (pilot {args.pilot}, budget {args.budget}/cell): {p.shape[1]} of {len(fam.task_ids)} problems with p >= {args.p_floor} at every "
              f"checkpoint, {p.shape[0]} checkpoints; noise-free forecast {truth:.4f}")
        print(f"  fixed n={FIXED_N}: samples {fixed_cost:>8d}  SE {fixed.std():.4f}  bias {fixed.mean() - truth:+.4f}"
              f"  RMSE {np.sqrt(np.mean((fixed - truth) ** 2)):.4f}")
        rows = []
        for spc in budgets:
            design = Design(pilot=args.pilot, samples_per_cell=spc, budget=args.budget, round_size=200,
                            target="target", target_compute=fam.target_compute)
            res = [adaptive_once(p, fam.compute, fam.target_compute, design, rng) for _ in range(args.reps)]
            f = np.array([x[0] for x in res])
            cost = float(np.mean([x[1] for x in res]))
            rows.append((cost, f.std()))
            print(f"  adaptive {spc:>4g}/cell: samples {cost:>8.0f}  SE {f.std():.4f}  bias {f.mean() - truth:+.4f}"
                  f"  RMSE {np.sqrt(np.mean((f - truth) ** 2)):.4f}  rounds {np.mean([x[2] for x in res]):.1f}"
                  f"  truncated cells {np.mean([x[3] for x in res]):.2f}")
        needed, how = samples_for_se(rows, fixed.std())
        ratios.append(fixed_cost / needed)
        print(f"  -> adaptive needs {needed:.0f} samples for SE {fixed.std():.4f} ({how}):"
              f" {fixed_cost / needed:.2f}x fewer than fixed n={FIXED_N}")
    print(f"samples saved by adaptive vs fixed n={FIXED_N} at equal forecast SE: "
          f"{', '.join(f'{r:.2f}x' for r in ratios)} (mean {np.mean(ratios):.2f}x; goal >= 3x) "
          f"[{time.perf_counter() - t0:.0f} s]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
