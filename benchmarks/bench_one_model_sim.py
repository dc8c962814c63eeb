"""The one-model forecast on simulated families with a known truth: today's nine scenarios plus families with
many never-solved problems, greedy (n = 1) families and 3-size ladders (2 fit checkpoints).

Per scenario: median |relative error| and 90% coverage of the target's true pass@1 over all problems and of the
report's metric (true mean log pass rate over the qualifying problems), median relative interval width, with
the naive ln(-ln pass@1) line and the report's aggregate line measured on the same families. Development seeds
are 7 and 2026; the report seed is 2323 (docs/forecasting.md).

    .venv/bin/python benchmarks/bench_one_model_sim.py --seed 2323 --replicates 64 [--scenarios power,greedy]
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))   # the simulated families (tests/simulated)

from simulated.scenarios import BASE, SCENARIOS, Scenario, draw_scenario  # noqa: E402

EXTRA = {
    "unsolved": Scenario("10. many never-solved problems (half unsolved at every fit size)",
                         replace(BASE, difficulty_median=6.0, difficulty_sd=1.6, k_spread=0.2)),
    "greedy": Scenario("11. greedy (n = 1), 4 sizes", replace(BASE, n_checkpoints=3, k_spread=0.2), n=1),
    "three": Scenario("12. three sizes (2 fit checkpoints), n = 10", replace(BASE, n_checkpoints=2, compute_span=4.0,
                      target_factor=2.5, k_spread=0.2), n=10),
}
ALL = SCENARIOS | EXTRA


def draw(name: str, rng: np.random.Generator):
    if name in SCENARIOS:
        return draw_scenario(name, rng)
    scenario = EXTRA[name]
    saved = SCENARIOS.get(name)
    SCENARIOS[name] = scenario
    try:
        return draw_scenario(name, rng)
    finally:
        if saved is None:
            del SCENARIOS[name]


def one_family(name: str, rep: int, seed: int, options) -> dict:
    from pipeline.forecast.methods import fit_aggregate
    from pipeline.forecast.one_model import forecast_grid
    from pipeline.forecast.problem_model import CountGrid
    from pipeline.errors import UserError
    from benchmarks.bench_one_model import naive_line

    rng = np.random.default_rng([seed, rep, sum(map(ord, name))])
    family, n = draw(name, rng)
    x = np.log(family.normalized_compute)
    counts = rng.binomial(n, family.pass_rates)
    grid = CountGrid(x, np.full(counts.shape, float(n)), counts.astype(float))
    p_true = family.target_pass_rates
    result = forecast_grid(grid, options)
    b = result["pass_at_k"][0]
    truth = float(p_true.mean())
    row = {"truth": truth, "value": b["value"], "covered": b["interval"][0] <= truth <= b["interval"][1],
           "width": (b["interval"][1] - b["interval"][0]) / truth, "naive": naive_line(x, counts.mean(axis=1) / n)}
    metric = result["report_metric"]
    if "error" not in metric:
        qual = np.flatnonzero(np.all(counts >= 1, axis=0))
        m_truth = float(np.mean(np.log(p_true[qual])))
        row |= {"m_truth": m_truth, "m_value": metric["value"],
                "m_covered": metric["interval"][0] <= m_truth <= metric["interval"][1]}
        try:
            agg = fit_aggregate(x, grid.n[:, qual], grid.c[:, qual], 0.9, 300, np.random.default_rng(0))
            row["agg"] = agg.prediction
        except UserError:
            pass
    return row


def main() -> None:
    from pipeline.forecast.one_model import ModelOptions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True, help="7 or 2026 to develop; 2323 to report")
    parser.add_argument("--replicates", type=int, default=64)
    parser.add_argument("--scenarios", default=",".join(ALL))
    parser.add_argument("--draws", type=int, default=500)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    options = ModelOptions(draws=args.draws, warmup=args.draws)
    print(f"seed {args.seed}, {args.replicates} families per scenario; pass@1: model err / coverage / width, naive err;"
          " report's metric: model err / coverage, aggregate err")
    for name in [s.strip() for s in args.scenarios.split(",") if s.strip()]:
        start = time.perf_counter()
        rows = [one_family(name, rep, args.seed, options) for rep in range(args.replicates)]
        err = [abs(r["value"] / r["truth"] - 1) for r in rows]
        naive = [abs(r["naive"] / r["truth"] - 1) for r in rows if r["naive"] is not None]
        text = (f"{ALL[name].title:<66} pass@1 {np.median(err):6.1%} {np.mean([r['covered'] for r in rows]):5.0%} "
                f"{np.median([r['width'] for r in rows]):6.1%}  naive {np.median(naive) if naive else float('nan'):6.1%}")
        m = [r for r in rows if "m_truth" in r]
        if m:
            text += (f" | metric {np.median([abs(r['m_value'] / r['m_truth'] - 1) for r in m]):6.1%} "
                     f"{np.mean([r['m_covered'] for r in m]):5.0%}  aggregate "
                     f"{np.median([abs(r['agg'] / r['m_truth'] - 1) for r in m if 'agg' in r] or [np.nan]):6.1%}")
        print(text + f"  {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
