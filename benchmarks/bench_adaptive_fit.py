"""What the fit gets from adaptive rounds: the per-problem fit (capforecast's default) on pass counts of every
adaptive sample, against the same fit on fixed n = 200 counts, and the PassUntil aggregate.

Each replicate draws a simulated family (tests/simulated/family.py; problems with p >= 0.01 at every fit checkpoint),
runs the real planner (pilot 5, allocation, rounds; 90 samples per cell) on Bernoulli draws, and fits
``pipeline.forecast.capability.forecast_from_counts`` to the plain counts (n = all samples of a cell, pilot included), as
``capforecast run`` writes them to pass_counts.csv. Truth: the target's true mean log p on the fit's
problems (per-problem fit) and the noise-free aggregate law (PassUntil aggregate).

    .venv/bin/python benchmarks/bench_adaptive_fit.py [--reps 24]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))   # the simulated families (tests/simulated)

from pipeline.sampling.adaptive import Design, allocate, forecast_from_means, next_totals  # noqa: E402
from pipeline.forecast.fit import FitOptions  # noqa: E402
from pipeline.forecast.capability import forecast_from_counts  # noqa: E402
from pipeline.sampling.passuntil import estimate_cell  # noqa: E402
from pipeline.records import PassCount  # noqa: E402
from simulated.family import FamilySpec, simulate_family  # noqa: E402


def adaptive_counts(p, compute, target_compute, rng, spc: float = 90.0):
    """(plain counts of every sample, PassUntil aggregate forecast, samples) of one simulated adaptive run."""
    m, k = p.shape
    design = Design(pilot=5, samples_per_cell=spc, budget=5000, round_size=200, target="target",
                    target_compute=target_compute)
    seq = rng.random((m * k, design.pilot + design.budget + design.round_size)) < p.reshape(-1, 1)
    cum = np.concatenate([np.zeros((m * k, 1), int), np.cumsum(seq, axis=1)], axis=1)
    names, n = [f"c{j}" for j in range(m)], np.full(m * k, design.pilot)
    counts = [PassCount(names[c // k], float(compute[c // k]), f"t{c % k}", design.pilot, int(cum[c, design.pilot]))
              for c in range(m * k)]
    design.cells = allocate(counts, design)
    rule = [design.cells[(names[c // k], f"t{c % k}")] for c in range(m * k)]
    start, sp, r, budget = (np.array([getattr(x, a) for x in rule]) for a in ("start", "start_passed", "r", "budget"))
    while True:
        total = next_totals(n, cum[np.arange(m * k), n], start, sp, r, budget, design.round_size)
        if np.all(total == n):
            break
        n = total
    log_p = np.array([estimate_cell("c", "t", seq[c, :n[c]], int(r[c]), int(budget[c]), int(start[c])).log_p
                      for c in range(m * k)]).reshape(m, k)
    plain = [PassCount(names[c // k], float(compute[c // k]), f"t{c % k}", int(n[c]), int(cum[c, n[c]]))
             for c in range(m * k)]
    return plain, forecast_from_means(compute, log_p.mean(axis=1), target_compute), int(n.sum())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=24)
    args = ap.parse_args()
    options = FitOptions(bootstrap=200, alternatives=False, buckets=1)
    rows = {"adaptive": [], "fixed n=200": []}
    aggregate, t0 = [], time.perf_counter()
    for rep in range(args.reps):
        rng = np.random.default_rng([7, rep])
        fam = simulate_family(FamilySpec(), seed=rep % 6)
        keep = fam.pass_rates.min(axis=0) >= 0.01
        p = fam.pass_rates[:, keep]
        plain, pu_forecast, samples = adaptive_counts(p, fam.compute, fam.target_compute, rng)
        aggregate.append(pu_forecast - forecast_from_means(fam.compute, np.log(p).mean(axis=1), fam.target_compute))
        fixed = rng.binomial(200, p)
        fixed_counts = [PassCount(c.checkpoint, c.compute, c.task_id, 200, int(fixed.ravel()[i]))
                        for i, c in enumerate(plain)]
        for label, counts, cost in (("adaptive", plain, samples), ("fixed n=200", fixed_counts, 200 * p.size)):
            out = forecast_from_counts(counts, None, fam.target_compute, options)
            index = [int(t[1:]) for t in out["problems"]]
            truth = float(np.mean(np.log(fam.target_pass_rates[keep][index])))
            lo, hi = out["prediction"]["interval"]
            rows[label].append((out["prediction"]["value"] - truth, lo <= truth <= hi, cost))
    print(f"{args.reps} simulated runs (families 0-5 of FamilySpec(), problems with p >= 0.01), per-problem fit:")
    for label, got in rows.items():
        err = np.array([g[0] for g in got])
        print(f"  {label:>12}: samples {np.mean([g[2] for g in got]):>8.0f}  error vs target truth: mean {err.mean():+.4f}"
              f" (MC SE {err.std() / np.sqrt(len(err)):.4f})  RMS {np.sqrt(np.mean(err ** 2)):.4f}"
              f"  90% interval covers {np.mean([g[1] for g in got]):.0%}")
    agg = np.array(aggregate)
    print(f"  PassUntil aggregate vs the noise-free aggregate law: mean {agg.mean():+.4f} (MC SE "
          f"{agg.std() / np.sqrt(len(agg)):.4f})  [{time.perf_counter() - t0:.0f} s]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
