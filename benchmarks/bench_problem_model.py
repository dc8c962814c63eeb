"""NumPyro NUTS vs PyMC with nutpie on the same model and the same counts, on this machine.

For 164 problems x 8 checkpoints (7 fitted, n = 100) and 800 problems x 3 checkpoints (2 fitted, n = 10), each
library fits the same link twice: the first run includes compilation (JAX / numba), the second reuses it (NumPyro
keeps its compiled sampler per shape; nutpie's compiled model is rebuilt per data set, so its second run
compiles again unless the model is the same object). Printed: wall seconds, worst R-hat, least bulk ESS,
divergences, ESS per second. Also the whole one-model forecast (both links, shape weighing, summaries) at those
sizes: the issue's time budget (<= 30 s and <= 60 s). Needs the ``pymc`` extra (pip install -e '.[pymc]').

    .venv/bin/python benchmarks/bench_problem_model.py [--link cloglog] [--draws 500]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))   # the simulated families (tests/simulated)


def grids():
    from pipeline.forecast.problem_model import CountGrid
    from simulated.family import FamilySpec, simulate_family

    out = {}
    for label, m, k, n in (("164 x 8 (7 fitted), n = 100", 164, 7, 100), ("800 x 3 (2 fitted), n = 10", 800, 2, 10)):
        family = simulate_family(FamilySpec(n_problems=m, n_checkpoints=k, target_factor=10), seed=1)
        counts = np.random.default_rng(1).binomial(n, family.pass_rates)
        out[label] = CountGrid(np.log(family.normalized_compute), np.full(counts.shape, float(n)), counts.astype(float))
    return out


def main() -> None:
    from pipeline.forecast.one_model import ModelOptions, forecast_grid
    from pipeline.forecast.problem_model import SamplerOptions, ShockPrior, problem_shock_prior
    from pipeline.forecast.samplers import sample

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--link", default="cloglog")
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--backends", default="numpyro,pymc")
    parser.add_argument("--grids", default="all", help="all, or 'small' for the 800 x 3 grid alone")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (a shared machine: compare within a run)")
    for label, grid in grids().items():
        if args.grids == "small" and not label.startswith("800"):
            continue
        prior = problem_shock_prior(grid, args.link, ShockPrior(0.06, 1.5))
        for backend in args.backends.split(","):
            for run in ("first (compiles)", "second"):
                options = SamplerOptions(draws=args.draws, warmup=args.draws, chains=2, backend=backend, seed=len(run))
                start = time.perf_counter()
                post = sample(grid, args.link, prior, options)
                seconds = time.perf_counter() - start
                d = post.diagnostics
                print(f"{label:<30} {backend:<8} {run:<17} {seconds:6.1f} s  R-hat {d['max_rhat']:.3f}  ESS "
                      f"{d['min_ess_bulk']:6.0f}  divergences {d['divergences']:3d}  ESS/s {d['min_ess_bulk'] / seconds:6.1f}",
                      flush=True)
        start = time.perf_counter()
        forecast_grid(grid, ModelOptions(draws=args.draws, warmup=args.draws))
        print(f"{label:<30} whole forecast (both links, weighing, summaries; compiled samplers reused): "
              f"{time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
