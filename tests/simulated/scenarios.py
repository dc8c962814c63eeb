"""Families on which no single law is exact: the nine validation scenarios of docs/forecasting.md.

Each scenario draws a ``SimulatedFamily`` (tests/simulated/family.py) whose per-problem pass rates follow
a chosen truth: power laws with spread exponents, logistic emergence in log C, curved laws, failure floors,
shocks shared by all problems at a checkpoint (the target included), problems that get worse, few samples
and checkpoints, a GPT-4-scale 1,000x extrapolation, or a HumanEval-like spread of difficulty.

    family, n = draw_scenario("emergence", np.random.default_rng(0))
    rows = scenario_study("emergence", replicates=32, methods=("stacked", "aggregate"))
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from simulated.family import FamilySpec, SimulatedFamily, sample_counts, simulate_family


@dataclass(frozen=True)
class Scenario:
    """A family recipe: the base spec, the deviation from the power law, the sample budget."""

    title: str
    spec: FamilySpec
    truth: str = "power"          # power | emergence | curvature | floors | shocks
    n: int = 100
    law_holds: bool = False       # the per-problem power law is exact (error goal 5% instead of 10%)


CURVATURE_SD = 0.006   # log(-log p) gains kappa (x - x_smallest)^2: +-0.38 (1 sd) at the target of a 30x family
SHOCK_SD = 0.06        # sd of the shared shock on log(-log p) per checkpoint (the target too)
FLOOR_MAX = 0.15       # half the problems fail at least a fraction U(0, FLOOR_MAX) of samples
BASE = FamilySpec(n_problems=164, n_checkpoints=7, compute_span=100.0, target_factor=30.0, non_monotone_fraction=0.0,
                  noise_sd=0.0)
SCENARIOS = {
    "power": Scenario("1. per-problem power laws, heterogeneous exponents", replace(BASE, k_spread=0.2), law_holds=True),
    "emergence": Scenario("2. logistic emergence in log C", BASE, truth="emergence"),
    "curvature": Scenario("3. curvature in each problem's law", BASE, truth="curvature"),
    "floors": Scenario("4. failure floors (p never reaches 1)", BASE, truth="floors"),
    "shocks": Scenario("5. shocks shared by a checkpoint's problems", BASE, truth="shocks"),
    "worse": Scenario("6. problems that get worse with scale",
                      replace(BASE, non_monotone_fraction=0.15, non_monotone_k=(-0.12, -0.02))),
    "few": Scenario("7. few samples (n = 20), few checkpoints (4)", replace(BASE, n_checkpoints=4), n=20),
    "gpt4": Scenario("8. GPT-4 scale: 2.5 decades, target 1,000x beyond", replace(BASE, compute_span=300.0,
                     target_factor=1000.0), law_holds=True),
    "humaneval": Scenario("9. HumanEval-like difficulty (many never solved small)",
                          replace(BASE, difficulty_median=3.0, difficulty_sd=1.6, k_spread=0.2)),
}


def draw_scenario(name: str, rng: np.random.Generator) -> tuple[SimulatedFamily, int]:
    """One family of the scenario and its sample budget n."""
    scenario = SCENARIOS[name]
    family = simulate_family(scenario.spec, seed=rng)
    x = np.log(family.normalized_compute)                          # fit checkpoints, target at 0
    lam, lam_t = -np.log(family.pass_rates), -np.log(family.target_pass_rates)
    m = len(family.task_ids)
    if scenario.truth == "emergence":      # p = sigmoid(b (x - x0)): a steep rise somewhere in log C
        b = rng.uniform(0.5, 1.2, size=m)
        x0 = rng.uniform(x[0] - 2.0, 3.0, size=m)
        lam = np.logaddexp(0.0, -b[None, :] * (x[:, None] - x0[None, :]))
        lam_t = np.logaddexp(0.0, b * x0)
    elif scenario.truth == "curvature":    # log(-log p) bends: the exponent drifts with scale
        kappa = rng.normal(0.0, CURVATURE_SD, size=m)
        lam = lam * np.exp(kappa[None, :] * (x[:, None] - x[0]) ** 2)
        lam_t = lam_t * np.exp(kappa * x[0] ** 2)
    elif scenario.truth == "floors":       # a fraction of samples always fail: p <= 1 - floor
        floor = np.where(rng.random(m) < 0.5, rng.uniform(0.0, FLOOR_MAX, size=m), 0.0)
        lam, lam_t = lam - np.log1p(-floor)[None, :], lam_t - np.log1p(-floor)
    elif scenario.truth == "shocks":       # every problem at one checkpoint a bit better or worse
        shock = rng.normal(0.0, SHOCK_SD, size=len(x) + 1)
        lam, lam_t = lam * np.exp(shock[:-1, None]), lam_t * np.exp(shock[-1])
    family.pass_rates, family.target_pass_rates = np.exp(-lam), np.exp(-lam_t)
    return family, scenario.n


def scenario_study(name: str, replicates: int, methods: tuple[str, ...], seed: int = 0, level: float = 0.9,
                   draws: int = 400) -> list[dict]:
    """Forecast the target of ``replicates`` families of the scenario; one row per (family, method)."""
    from pipeline.errors import UserError
    from pipeline.forecast.fit import FitOptions, prepare, run_method

    options = FitOptions(level=level, bootstrap=draws, seed=seed)
    rows = []
    for rep in range(replicates):
        rng = np.random.default_rng([seed, rep, sum(map(ord, name))])
        family, n = draw_scenario(name, rng)
        counts = sample_counts(family, n, rng, include_target=False)
        try:
            data = prepare(counts, None, family.target_compute, options)
        except UserError as exc:
            rows += [{"replicate": rep, "method": m, "error": str(exc)} for m in methods]
            continue
        truth = family.true_mean_log_pass_rate(data.restriction.problems)
        for method in methods:
            try:
                fit = run_method(method, data.table, data.restriction.models, data.restriction.problems,
                                 data.target_compute, options, seed_offset=rep)
            except UserError as exc:
                rows.append({"replicate": rep, "method": method, "error": str(exc)})
                continue
            lo, hi = fit.interval
            rows.append({"replicate": rep, "method": method, "truth": truth, "prediction": fit.prediction,
                         "interval": (lo, hi), "relative_error": (fit.prediction - truth) / abs(truth),
                         "covered": lo <= truth <= hi, "half_width": (hi - lo) / 2 / abs(truth),
                         "n_problems": len(data.restriction.problems), "error": None})
    return rows
