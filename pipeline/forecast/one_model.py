"""The forecast of one family from the one model: fit the links, weigh them, and read every number from the
target's draws (pass@k, the report's metric and its buckets, each problem's pass probability).

    result = forecast_grid(grid, ModelOptions(), target_n=np.full(164, 20))
    result["pass_at_k"][0]   # {"k": 1, "value": ..., "interval": [lo, hi], "level": 0.9, "problems": 164, ...}
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from pipeline.errors import UserError
from pipeline.forecast.problem_model import CountGrid, SamplerOptions, ShockPrior, problem_shock_prior
from pipeline.forecast.summaries import default_ks, mean_log_block, pass_at_k_blocks

# Set from the development families only (benchmarks/derive_shock_prior.py; docs/forecasting.md): the
# posterior predictive of a new family's departure from a straight line of -ln(-ln pass@1) in ln C.
SHOCK_PRIOR_MEDIAN = 0.06
SHOCK_PRIOR_LOG_SD = 1.5


@dataclass(frozen=True)
class ModelOptions:
    """Every setting of the one-model forecast; written into forecast.json as it is."""

    links: tuple = ("cloglog", "logit")
    shock_prior_median: float = SHOCK_PRIOR_MEDIAN    # on the benchmark's -ln(-ln pass@1) scale
    shock_prior_log_sd: float = SHOCK_PRIOR_LOG_SD
    draws: int = 500
    warmup: int = 500
    chains: int = 2
    seed: int = 0
    backend: str = "numpyro"
    max_lfo_folds: int = 2
    level: float = 0.9

    def sampler(self) -> SamplerOptions:
        return SamplerOptions(draws=self.draws, warmup=self.warmup, chains=self.chains, seed=self.seed,
                              backend=self.backend)


def forecast_grid(grid: CountGrid, options: ModelOptions, target_n: np.ndarray | None = None,
                  target_counts: np.ndarray | None = None, qualifying: np.ndarray | None = None) -> dict:
    """Fit, weigh, and summarise the target at x = 0. ``target_counts`` (with ``target_n``) adds the actuals.

    ``qualifying``: indices of the problems of the report's metric (default: solved at least once by every fit
    checkpoint, the report's rule)."""
    from pipeline.forecast.shapes import fit_links, target_draws, weigh

    fit_rows = np.flatnonzero(grid.n.sum(axis=1) > 0)
    if len(fit_rows) < 2:
        raise UserError(f"need at least 2 checkpoints below the target to forecast; got {len(fit_rows)}: one point "
                        "cannot tell a trend from the level")
    rng = np.random.default_rng([options.seed, 23])
    aggregate_prior = ShockPrior(options.shock_prior_median, options.shock_prior_log_sd)
    posts, priors = {}, {}
    for link in options.links:
        priors[link] = problem_shock_prior(grid, link, aggregate_prior)
        posts |= fit_links(grid, (link,), priors[link], options.sampler())
    weighing = weigh(grid, posts, priors, options.sampler(), options.max_lfo_folds, rng)
    p, _ = target_draws(posts, weighing, grid.x, rng)
    n_fit_max = int(grid.n.max())
    ks = default_ks(int(np.max(target_n)) if target_n is not None else None, n_fit_max)
    actual = (target_n, target_counts) if target_counts is not None else None
    out = {"pass_at_k": pass_at_k_blocks(p, ks, options.level, target_n, rng, actual),
           "problem_pass_probability": np.median(p, axis=0).tolist(),
           "weights": weighing.weights, "weighing": weighing.method, "lfo_folds": weighing.folds,
           "elpd": weighing.elpd, "pareto_k_max": weighing.pareto_k_max,
           "diagnostics": {link: post.diagnostics for link, post in posts.items()},
           "shock_prior": {link: asdict(prior) for link, prior in priors.items()},
           "fit_checkpoints": int(len(fit_rows)), "options": asdict(options)}
    if len(fit_rows) == 2:
        out["note"] = ("2 checkpoints below the target: the line through their shocks cannot be told from the trend, "
                       "so the interval rests on the shock prior (set from development families), not on this family")
    qualifying = np.flatnonzero(np.all(grid.c[fit_rows] >= 1, axis=0)) if qualifying is None else qualifying
    out["report_metric"] = report_metric(p, qualifying, grid, options.level, target_n, target_counts, rng)
    out["draws"] = p
    return out


def report_metric(p: np.ndarray, qualifying: np.ndarray, grid: CountGrid, level: float, target_n, target_counts,
                  rng) -> dict:
    """The GPT-4 report's mean log pass rate over the qualifying problems, or the reason it cannot be given."""
    if grid.n.max() <= 1:
        return {"error": "not forecastable with n = 1 (greedy): every solved problem has log pass rate exactly 0 and an "
                         "unsolved one log 0, so the report's metric has nothing to measure; pass@1 is forecast"}
    try:
        block = mean_log_block(p, qualifying, level, target_n, rng)
    except UserError as exc:
        return {"error": str(exc)}
    block["problems"] = int(len(qualifying))
    if target_counts is not None and target_n is not None:
        c, n = target_counts[qualifying], np.broadcast_to(target_n, target_counts.shape)[qualifying]
        solved = c > 0
        if solved.any():
            from pipeline.forecast.summaries import verdict

            block["actual"] = float(np.mean(np.log(c[solved] / n[solved])))
            block["verdict"] = verdict(block["actual"], block).as_dict()
    return block
