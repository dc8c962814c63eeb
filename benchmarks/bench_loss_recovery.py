"""Loss law: parameter recovery, prediction-interval coverage on simulated families (exact and misspecified),
and the Chinchilla runs (Hoffmann et al. 2022 as re-extracted by Besiroglu et al. 2024).

    .venv/bin/python benchmarks/bench_loss_recovery.py [--reps 32] [--sim-bootstrap 50] [--bootstrap 200]
                                                       [--skip-simulation] [--skip-chinchilla]

1. Recovery: 6 checkpoints at 1e-4..1e-1 of the target, exact and with 0.2% noise.
2. Coverage of the 90% prediction interval for a new run at the target (its own scatter included), 8 points at
   1e-4..1e-1, ``--reps`` families per scenario: the law exact with 1% scatter; a law that bends (two power
   terms: no single a*C^b + c is exact); the bending law with 0.3% scatter fitted on one decade, 3 decades short.
   Baseline beside it: the curve-only interval of the same bootstrap (what `capforecast loss` printed before).
3. Chinchilla (../shared/data/realdata/chinchilla_points.csv): target the largest run (1.296e22 FLOPs), fit on the
   frontier (loss below every run with less compute) and on all runs, at 1/10, 1/100, 1/1,000 of its compute.
"""
import argparse
import csv
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from pipeline.forecast.loss_forecast import LossFitSettings, forecast_loss, loss_forecast_json  # noqa: E402
from pipeline.forecast.loss_law import fit_loss_law  # noqa: E402

CHINCHILLA = Path(__file__).resolve().parents[2] / "shared" / "data" / "realdata" / "chinchilla_points.csv"


def recovery(rng):
    x = np.logspace(-4, -1, 6)
    for a, b, c in [(1.2, -0.08, 1.7), (0.6, -0.2, 0.9)]:
        exact = fit_loss_law(x, a * x ** b + c)
        errs = [(lambda f: (f.a + f.c - (a + c)) / (a + c))(fit_loss_law(x, (a * x ** b + c) * rng.normal(1, 0.002, 6)))
                for _ in range(50)]
        print(f"recovery a={a} b={b} c={c}: exact-data fit a={exact.a:.4f} b={exact.b:.4f} c={exact.c:.4f}; "
              f"0.2% noise: forecast rel. error median |{np.median(np.abs(errs)):.3%}|, max |{np.max(np.abs(errs)):.3%}|")


SCENARIOS = {
    "exact law, 1% scatter": (lambda x: 1.2 * x ** -0.08 + 1.7, 0.01, (-4, -1)),
    "bending law, 0.5% scatter": (lambda x: 1.2 * x ** -0.08 + 0.5 * x ** -0.3 + 1.0, 0.005, (-4, -1)),
    "bending law, one decade, 3 short": (lambda x: 1.2 * x ** -0.08 + 0.5 * x ** -0.3 + 1.0, 0.003, (-4, -3)),
}


def coverage(reps, bootstrap):
    print(f"\nprediction-interval coverage, nominal 90%, {reps} families per scenario, 8 points, bootstrap {bootstrap}")
    print("| scenario | median |error| | coverage (prediction interval) | median half-width | coverage (curve only, "
          "the old interval) | its median half-width |")
    print("|---|---|---|---|---|---|")
    for name, (law, sigma, (lo, hi)) in SCENARIOS.items():
        x = np.logspace(lo, hi, 8)
        errs, hits, widths, curve_hits, curve_widths = [], 0, [], 0, []
        for seed in range(reps):
            rng = np.random.default_rng(1000 + seed)
            loss = law(x) * np.exp(rng.normal(0, sigma, 8))
            truth = law(1.0) * np.exp(rng.normal(0, sigma))
            out = forecast_loss(x * 1e22, loss, 1e22, LossFitSettings(bootstrap=bootstrap, seed=seed))
            pred = out["prediction"]
            band, curve = pred["interval"], pred["curve_interval"]
            errs.append(abs(pred["value"] / truth - 1))
            hits += band[0] <= truth <= band[1]
            widths.append((band[1] - band[0]) / 2 / pred["value"])
            curve_hits += curve[0] <= truth <= curve[1]
            curve_widths.append((curve[1] - curve[0]) / 2 / pred["value"])
        print(f"| {name} | {np.median(errs):.2%} | {hits / reps:.0%} | ±{np.median(widths):.2%} | "
              f"{curve_hits / reps:.0%} | ±{np.median(curve_widths):.2%} |")


def chinchilla(bootstrap):
    rows = [{"checkpoint": f"run{r['id']}", "compute": float(r["C_flop"]), "mean_loss": float(r["loss"])}
            for r in csv.DictReader(open(CHINCHILLA))]
    big = max(rows, key=lambda r: r["compute"])
    print(f"\nChinchilla, target {big['checkpoint']} at {big['compute']:.4g} FLOPs (loss {big['mean_loss']:.4f}), "
          f"90% prediction interval, bootstrap {bootstrap}")
    print("| fit on | fit compute ≤ | points | forecast [90% interval] | actual | error | inside | off-curve warning | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for frontier in (True, False):
        for fraction in (0.1, 0.01, 0.001):
            start = time.perf_counter()
            out = loss_forecast_json(rows, big["checkpoint"], big["compute"],
                                     LossFitSettings(bootstrap=bootstrap, max_fit_compute_fraction=fraction,
                                                     frontier=frontier))
            pred, actual = out["prediction"], out["actual"]["value"]
            lo, hi = pred["interval"]
            warned = any("one L(C) curve" in w for w in out["fit"]["warnings"])
            print(f"| {'frontier' if frontier else 'all runs'} | 1/{round(1 / fraction):,} | "
                  f"{len(out['fit']['checkpoints'])} | {pred['value']:.4f} [{lo:.4f}, {hi:.4f}] | {actual:.4f} | "
                  f"{pred['value'] / actual - 1:+.2%} | {'yes' if lo <= actual <= hi else 'NO'} | "
                  f"{'yes' if warned else 'no'} | {time.perf_counter() - start:.1f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=32)
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates on the Chinchilla table")
    parser.add_argument("--sim-bootstrap", type=int, default=50, help="bootstrap replicates per simulated family")
    parser.add_argument("--skip-simulation", action="store_true")
    parser.add_argument("--skip-chinchilla", action="store_true")
    args = parser.parse_args()
    recovery(np.random.default_rng(0))
    if not args.skip_simulation:
        coverage(args.reps, args.sim_bootstrap)
    if args.skip_chinchilla:
        return
    if CHINCHILLA.exists():
        chinchilla(args.bootstrap)
    else:
        print(f"\n{CHINCHILLA} not found: Chinchilla section skipped")


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    main()
