"""Samples needed by adaptive PassUntil sampling vs fixed n = 200 for the same forecast standard error.

Both designs forecast the target's mean log pass rate with the report's aggregate fit (log(-E log p)
linear in log C) on the same simulated family (tests/simulated/family.py, known truth) and the same problems:
those whose true pass rate is >= --p-floor at every fit checkpoint (fixed n = 200 solves them almost
always; the hard tail is left out of both, and said so). Fixed: n = 200 per cell, log(c/n), a problem
dropped in a replicate where some checkpoint never solves it (the P/M rule). Adaptive: the real planner
(pipeline.sampling.adaptive: pilot, allocation, rounds) driving simulated generation, and the real estimator
(pipeline.sampling.passuntil.estimate_cell) on draws in sample_index order; every generated sample is counted,
pilot and draws past the stop included. The adaptive design runs at several budgets; the samples it
needs for the fixed design's standard error are interpolated (log SE linear in log samples).

Two baselines, because the P/M rule makes fixed n = 200 worse than its sampling noise alone: a problem
with p ~ 0.01 goes unsolved in 200 draws 13 % of the time and is dropped from that replicate, which
changes what is being forecast. "as practised" is the Monte Carlo SE of fixed n = 200 with those drops;
"fair" is its delta-method SE with the problem set held fixed, sqrt(sum_m g_m^2 F^2 sum_i (1-p)/(n p) /
(K^2 mu_m^2)), the per-sample Cramer-Rao rate that no estimator of log p beats. "ceiling" is what the
best allocation of r could reach with every p known (exact Var T_r, same pilot cost): a bound for any
pilot-based allocation of this design with this fit.

    .venv/bin/python benchmarks/bench_adaptive.py [--families 6] [--reps 100] [--quick]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))   # the simulated families (tests/simulated)

from scipy import special, stats  # noqa: E402

from pipeline.sampling.adaptive import (PRIORS, Design, allocate, allocate_r, forecast_from_means, leverage_weights,  # noqa: E402
                               next_totals)
from pipeline.sampling.passuntil import COMPLETE, estimate_cell  # noqa: E402
from pipeline.sampling.plan import summarize  # noqa: E402
from pipeline.records import PassCount  # noqa: E402
from simulated.family import FamilySpec, simulate_family  # noqa: E402

FIXED_N = 200


def fixed_design(p: np.ndarray, compute, target_compute, reps: int, rng) -> tuple[np.ndarray, int, np.ndarray]:
    """Forecasts of fixed n = 200 with the P/M rule, the samples it costs, and whether a replicate dropped a problem."""
    out, dropped = [], []
    for _ in range(reps):
        c = rng.binomial(FIXED_N, p)
        solved = (c > 0).all(axis=0)
        out.append(forecast_from_means(compute, np.log(c[:, solved] / FIXED_N).mean(axis=1), target_compute))
        dropped.append(not solved.all())
    return np.array(out), FIXED_N * p.size, np.array(dropped)


def delta_variance(p: np.ndarray, compute, target_compute, cell_variance: np.ndarray) -> float:
    """Variance of the aggregate forecast by the delta method, from each cell's variance of its log p estimate."""
    mu = -np.log(p).mean(axis=1)
    value = forecast_from_means(compute, -mu, target_compute)
    weights = leverage_weights(compute, mu, target_compute)
    return float(value ** 2 * np.sum(weights * cell_variance.sum(axis=1)) / p.shape[1] ** 2)


def passuntil_variance(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Exact Var T_r = psi'(r) - E psi'(N) with N - r negative binomial (no budget), cell by cell."""
    out = np.empty(p.size)
    for i, (pi, ri) in enumerate(zip(p.ravel(), r.ravel())):
        k = np.arange(int(stats.nbinom.isf(1e-10, ri, pi)) + 2)
        out[i] = special.polygamma(1, ri) - np.sum(stats.nbinom.pmf(k, ri, pi) * special.polygamma(1, ri + k))
    return out.reshape(p.shape)


def ceiling(p: np.ndarray, compute, target_compute, design: Design, target_var: float) -> float:
    """Samples the allocation needs for target_var when every p is known (pilot still paid): a lower bound."""
    m, k = p.shape
    mu = -np.log(p).mean(axis=1)
    weights = np.repeat(leverage_weights(compute, mu, target_compute) / k ** 2, k)

    def at(spc: float) -> tuple[float, float]:
        r = allocate_r(p.ravel(), weights, (spc - design.pilot) * p.size, design.r_max, design.budget, p.ravel())
        var = delta_variance(p, compute, target_compute, passuntil_variance(p, r.reshape(p.shape)))
        return design.pilot * p.size + float(np.sum(r / p.ravel())), var

    lo, hi = design.pilot + 1.0, 2000.0
    for _ in range(25):
        mid = np.sqrt(lo * hi)
        lo, hi = (mid, hi) if at(mid)[1] > target_var else (lo, mid)
    return at(hi)[0]


def expected_ratio(p: np.ndarray, compute, target_compute, design: Design, fair_var: float, rng,
                   pilots: int = 10) -> float:
    """Fixed n's cost over the design's for fixed n's fair variance, exactly given each pilot's allocation
    (expected cost pilot + sum r/p, exact Var T_r; var x cost held constant), averaged over pilot draws."""
    m, k = p.shape
    names = [f"c{j}" for j in range(m)]
    out = []
    for _ in range(pilots):
        c = rng.binomial(design.pilot, p)
        counts = [PassCount(names[j], float(compute[j]), f"t{i}", design.pilot, int(c[j, i]))
                  for j in range(m) for i in range(k)]
        cells = allocate(counts, Design(**{**design.__dict__, "cells": {}}))
        r = np.array([[cells[(names[j], f"t{i}")].r for i in range(k)] for j in range(m)])
        var = delta_variance(p, compute, target_compute, passuntil_variance(p, r))
        out.append((design.pilot * p.size + float(np.sum(r / p))) * var / fair_var)
    return FIXED_N * p.size / float(np.mean(out))


def adaptive_once(p: np.ndarray, compute, target_compute, design: Design, rng, with_interval: bool = False) -> tuple:
    """One replicate: (forecast, samples generated, rounds, truncated cells, log(c/n) forecast of the same
    samples, the PassUntil summary's 90 % interval or None)."""
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
    passed = cum[np.arange(m * k), n].reshape(m, k)
    solved = (passed > 0).all(axis=0)   # plain counts of every sample drawn, as pass_counts.csv holds them
    naive = forecast_from_means(compute, np.log(passed[:, solved] / n.reshape(m, k)[:, solved]).mean(axis=1),
                                target_compute)
    cells = [estimate_cell(names[c // k], f"t{c % k}", seq[c, :n[c]], int(r[c]), int(budget[c]), int(start[c]))
             for c in range(m * k)]
    truncated = sum(cell.status != COMPLETE for cell in cells)
    means = np.array([cell.log_p for cell in cells]).reshape(m, k).mean(axis=1)
    interval = None
    if with_interval and not truncated:   # the interval `capforecast passuntil` reports (pipeline.sampling.plan.summarize)
        summary = summarize(cells, dict(zip(names, map(float, compute))), None, float(target_compute))
        interval = summary["prediction"]["interval"]
    return forecast_from_means(compute, means, target_compute), int(n.sum()), rounds, truncated, naive, interval


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
    ap.add_argument("--families", type=int, default=6)
    ap.add_argument("--first-family", type=int, default=0, help="seed of the first simulated family")
    ap.add_argument("--reps", type=int, default=100, help="adaptive replicates per budget and family")
    ap.add_argument("--budgets", default="15,40,90,150", help="adaptive samples per cell to try")
    ap.add_argument("--p-floor", type=float, default=0.01)
    ap.add_argument("--pilot", type=int, default=5)
    ap.add_argument("--budget", type=int, default=5000, help="most sequential draws per cell")
    ap.add_argument("--prior", default=PRIORS[0], choices=PRIORS, help="planning prior of the simulated runs")
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
        fixed, fixed_cost, dropped = fixed_design(p, fam.compute, fam.target_compute, 4 * args.reps, rng)
        print(f"family {seed} (pilot {args.pilot}, budget {args.budget}/cell, prior {args.prior}): {p.shape[1]} of {len(fam.task_ids)} problems with p >= {args.p_floor} at every "
              f"checkpoint, {p.shape[0]} checkpoints; noise-free forecast {truth:.4f}")
        fair_se = np.sqrt(delta_variance(p, fam.compute, fam.target_compute, (1 - p) / (FIXED_N * p)))
        print(f"  fixed n={FIXED_N}: samples {fixed_cost:>8d}  SE {fixed.std():.4f} as practised (P/M drops in "
              f"{np.mean(dropped):.0%} of replicates), {fair_se:.4f} fair (problems held fixed)"
              f"  bias {fixed.mean() - truth:+.4f}  RMSE {np.sqrt(np.mean((fixed - truth) ** 2)):.4f}")
        plans = {prior: expected_ratio(p, fam.compute, fam.target_compute, Design(
            pilot=args.pilot, samples_per_cell=90, budget=args.budget, target="target",
            target_compute=fam.target_compute, prior=prior), fair_se ** 2, np.random.default_rng(seed)) for prior in PRIORS}
        print("  expected saving at 90/cell, fair basis, exact given each of 10 pilots: "
              + ", ".join(f"prior {k} {v:.2f}x" for k, v in plans.items()))
        rows = []
        for spc in budgets:
            design = Design(pilot=args.pilot, samples_per_cell=spc, budget=args.budget, round_size=200,
                            target="target", target_compute=fam.target_compute, prior=args.prior)
            res = [adaptive_once(p, fam.compute, fam.target_compute, design, rng, spc == 90) for _ in range(args.reps)]
            covered = [lo <= truth <= hi for lo, hi in (x[5] for x in res if x[5] is not None)]
            f = np.array([x[0] for x in res])
            cost = float(np.mean([x[1] for x in res]))
            rows.append((cost, f.std()))
            print(f"  adaptive {spc:>4g}/cell: samples {cost:>8.0f}  SE {f.std():.4f}  bias {f.mean() - truth:+.4f}"
                  f"  RMSE {np.sqrt(np.mean((f - truth) ** 2)):.4f}  rounds {np.mean([x[2] for x in res]):.1f}"
                  f"  truncated cells {np.mean([x[3] for x in res]):.2f}"
                  f"  | log(c/n) of these counts: bias {np.mean([x[4] for x in res]) - truth:+.4f}"
                  + (f"  | 90% interval covers {np.mean(covered):.0%} of {len(covered)}" if covered else ""))
        row = {}
        for label, se in (("as practised", fixed.std()), ("fair", fair_se)):
            needed, how = samples_for_se(rows, se)
            best = ceiling(p, fam.compute, fam.target_compute, design, se ** 2)
            row[label] = (fixed_cost / needed, fixed_cost / best)
            print(f"  -> {label}: adaptive needs {needed:.0f} samples for SE {se:.4f} ({how}): "
                  f"{fixed_cost / needed:.2f}x fewer than fixed n={FIXED_N}; ceiling (every p known) {fixed_cost / best:.2f}x")
        ratios.append(row)
    for label in ("as practised", "fair"):
        got = [r[label][0] for r in ratios]
        print(f"samples saved vs fixed n={FIXED_N} at equal forecast SE, {label}: "
              f"{', '.join(f'{x:.2f}x' for x in got)} (mean {np.mean(got):.2f}x; goal >= 3x); ceiling "
              f"{', '.join(f'{r[label][1]:.2f}x' for r in ratios)}")
    print(f"[{time.perf_counter() - t0:.0f} s]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
