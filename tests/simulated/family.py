"""Simulated checkpoint families with a known truth, for tests and the simulation study.

Each problem i follows its own law  -log p_i(C) = a_i * C**(-k_i)  on the normalised compute axis
(the target has C = 1, so a_i is the problem's true -log pass rate at the target). Exponents are spread
uniformly in k +- k_spread; a fraction of problems get a small negative exponent (pass rate falls with
scale, as the GPT-4 report notes); optional lognormal noise perturbs every (checkpoint, problem) cell.
Difficulty is set at the smallest checkpoint, where real families show the widest spread.

API (stable; the adaptive-sampling study imports it):

    family = simulate_family(FamilySpec(n_problems=164, target_factor=100), seed=0)
    family.pass_rates            # array [checkpoint, problem] of true pass rates (fit checkpoints)
    family.target_pass_rates     # array [problem] of the target's true pass rates
    family.true_mean_log_pass_rate(task_ids)            # truth at the target, over those problems
    counts = sample_counts(family, n=100, rng=np.random.default_rng(1))   # list[PassCount], target incl.
    draw_passes(family, j, i, size, rng)                # Bernoulli draws for checkpoint j, problem i
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.records import PassCount

TARGET_NAME = "target"


@dataclass
class FamilySpec:
    """How to draw a family: problems, checkpoints, the law's parameters and its deviations."""

    n_problems: int = 164
    n_checkpoints: int = 7
    compute_span: float = 100.0        # largest / smallest fit checkpoint compute (two decades)
    target_factor: float = 100.0       # target compute / largest fit checkpoint compute
    target_compute: float = 1e23       # raw FLOPs of the target (checkpoints scale down from it)
    k: float = 0.3                     # centre of the per-problem exponents
    k_spread: float = 0.15             # exponents uniform in [k - k_spread, k + k_spread]
    difficulty_median: float = 1.5     # median -log pass rate at the smallest checkpoint
    difficulty_sd: float = 1.0         # sd of log(-log pass rate) at the smallest checkpoint
    non_monotone_fraction: float = 0.03  # problems whose pass rate falls with scale
    non_monotone_k: tuple[float, float] = (-0.08, -0.02)  # their exponent range
    noise_sd: float = 0.05             # lognormal noise on -log p per (checkpoint, problem)
    difficulty_at: str = "smallest"    # "smallest": spread set there (slow improvers end hardest at the
                                       # target); "target": spread set at C = 1, independent of exponents


@dataclass
class SimulatedFamily:
    """A drawn family: true per-problem laws and the pass rates they imply at each checkpoint."""

    spec: FamilySpec
    checkpoints: list[str]
    compute: np.ndarray                # raw FLOPs of the fit checkpoints, ascending
    target_compute: float
    task_ids: list[str]
    alpha: np.ndarray                  # per-problem a_i: noise-free -log p at the target
    k: np.ndarray                      # per-problem exponents
    non_monotone: list[str]            # task_ids drawn with a negative exponent
    pass_rates: np.ndarray             # [checkpoint, problem] true pass rates, noise included
    target_pass_rates: np.ndarray      # [problem] the target's true pass rates, noise included
    extra: dict = field(default_factory=dict)

    @property
    def normalized_compute(self) -> np.ndarray:
        return self.compute / self.target_compute

    def true_mean_log_pass_rate(self, task_ids: list[str] | None = None) -> float:
        """The target's true E_P[log pass rate] over the given problems (all when None)."""
        index = self._index(task_ids)
        return float(np.mean(np.log(self.target_pass_rates[index])))

    def true_checkpoint_mean_log(self, task_ids: list[str] | None = None) -> np.ndarray:
        """True E_P[log pass rate] at each fit checkpoint."""
        index = self._index(task_ids)
        return np.mean(np.log(self.pass_rates[:, index]), axis=1)

    def _index(self, task_ids: list[str] | None) -> np.ndarray:
        if task_ids is None:
            return np.arange(len(self.task_ids))
        position = {t: i for i, t in enumerate(self.task_ids)}
        return np.array([position[t] for t in task_ids], dtype=int)


def simulate_family(spec: FamilySpec, seed: int | np.random.Generator = 0) -> SimulatedFamily:
    """Draw one family from ``spec``; the same seed gives the same family."""
    rng = np.random.default_rng(seed)
    if spec.n_checkpoints < 2 or spec.compute_span <= 1 or spec.target_factor < 1:
        raise ValueError("need n_checkpoints >= 2, compute_span > 1, target_factor >= 1")
    largest = 1.0 / spec.target_factor
    normalized = largest * np.logspace(-np.log10(spec.compute_span), 0.0, spec.n_checkpoints)
    m = spec.n_problems
    k = rng.uniform(spec.k - spec.k_spread, spec.k + spec.k_spread, size=m)
    n_falling = int(round(spec.non_monotone_fraction * m))
    falling = rng.choice(m, size=n_falling, replace=False) if n_falling else np.array([], dtype=int)
    k[falling] = rng.uniform(*spec.non_monotone_k, size=n_falling)
    spread = np.exp(spec.difficulty_sd * rng.standard_normal(m))
    if spec.difficulty_at == "smallest":
        alpha = spec.difficulty_median * spread * normalized[0] ** k      # -log p at C = 1 (the target)
    elif spec.difficulty_at == "target":
        alpha = spec.difficulty_median * normalized[0] ** spec.k * spread
    else:
        raise ValueError(f"difficulty_at must be 'smallest' or 'target', got {spec.difficulty_at!r}")
    lam = alpha[None, :] * normalized[:, None] ** (-k[None, :])
    lam_target = alpha.copy()
    if spec.noise_sd > 0:
        lam = lam * np.exp(spec.noise_sd * rng.standard_normal(lam.shape))
        lam_target = lam_target * np.exp(spec.noise_sd * rng.standard_normal(m))
    task_ids = [f"Sim/{i}" for i in range(m)]
    return SimulatedFamily(
        spec=spec,
        checkpoints=[f"sim-{j}" for j in range(spec.n_checkpoints)],
        compute=normalized * spec.target_compute,
        target_compute=spec.target_compute,
        task_ids=task_ids,
        alpha=alpha,
        k=k,
        non_monotone=[task_ids[i] for i in sorted(falling)],
        pass_rates=np.exp(-lam),
        target_pass_rates=np.exp(-lam_target),
    )


def sample_counts(family: SimulatedFamily, n: int | np.ndarray, rng: np.random.Generator,
                  include_target: bool = True, target_n: int | None = None) -> list[PassCount]:
    """Binomial pass counts with ``n`` samples per (checkpoint, problem); n may be an array [ckpt, problem]."""
    n_matrix = np.broadcast_to(np.asarray(n, dtype=int), family.pass_rates.shape)
    passed = rng.binomial(n_matrix, family.pass_rates)
    rows = [PassCount(name, float(family.compute[j]), task, int(n_matrix[j, i]), int(passed[j, i]))
            for j, name in enumerate(family.checkpoints) for i, task in enumerate(family.task_ids)]
    if include_target:
        tn = int(target_n if target_n is not None else n_matrix.max())
        target_passed = rng.binomial(tn, family.target_pass_rates)
        rows += [PassCount(TARGET_NAME, float(family.target_compute), task, tn, int(c))
                 for task, c in zip(family.task_ids, target_passed)]
    return rows


def draw_passes(family: SimulatedFamily, checkpoint: int, problem: int, size: int,
                rng: np.random.Generator) -> np.ndarray:
    """``size`` Bernoulli outcomes (bool) for one (checkpoint, problem); checkpoint -1 = the target."""
    p = family.target_pass_rates[problem] if checkpoint == -1 else family.pass_rates[checkpoint, problem]
    return rng.random(size) < p


def forecast_study(replicates: int, n: int = 100, methods: tuple[str, ...] = ("aggregate", "per-problem"),
                   target_factor: tuple[float, float] = (10.0, 300.0), seed: int = 0, level: float = 0.9,
                   draws: int = 400, **spec_fields) -> list[dict]:
    """Forecast the target of ``replicates`` simulated families with each method; one row per (family, method).

    The target factor is drawn log-uniformly in ``target_factor``; the truth is the target's true
    E_P[log p] over the problems P that the report's rule selected from the sampled counts.
    """
    from pipeline.errors import UserError
    from pipeline.forecast.fit import FitOptions, prepare, run_method

    options = FitOptions(level=level, bootstrap=draws, seed=seed)
    rows = []
    for rep in range(replicates):
        rng = np.random.default_rng([seed, rep])
        factor = float(np.exp(rng.uniform(np.log(target_factor[0]), np.log(target_factor[1]))))
        family = simulate_family(FamilySpec(target_factor=factor, **spec_fields), seed=rng)
        counts = sample_counts(family, n, rng, include_target=False)
        try:
            data = prepare(counts, None, family.target_compute, options)
        except UserError as exc:
            rows += [{"replicate": rep, "method": m, "factor": factor, "error": str(exc)} for m in methods]
            continue
        truth = family.true_mean_log_pass_rate(data.restriction.problems)
        for method in methods:
            fit = run_method(method, data.table, data.restriction.models, data.restriction.problems,
                             data.target_compute, options, seed_offset=rep)
            rows.append({"replicate": rep, "method": method, "factor": factor, "truth": truth,
                         "prediction": fit.prediction, "interval": fit.interval,
                         "relative_error": (fit.prediction - truth) / abs(truth),
                         "covered": fit.interval[0] <= truth <= fit.interval[1],
                         "n_problems": len(data.restriction.problems), "error": None})
    return rows
