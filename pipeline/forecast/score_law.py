"""Benchmark-level law for teams that have only leaderboard numbers (``checkpoint,compute,pass@1[,pass@10,...]``).

    K_ik ~ Binomial(N, Q_ik),   -ln(-ln Q_ik) = A + alpha x_i + beta ln k + delta x_i ln k + s_i

x_i = ln(C_i / C_target); N the benchmark's problem count; k the pass@k columns given (beta, delta only when
more than one k is given: Krajewski et al. 2025's pass@k law). The shock s_i shared by checkpoint i's scores
has the same construction as the per-problem model (residual shocks sampled, the line through them put back
into the forecast) and the shock prior set from the development families (docs/forecasting.md). A score of 0
or 1 is a count like any other, so families whose small members solve nothing still fit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.forecast.problem_model import ShockPrior, SamplerOptions, residual_basis, shock_line_variance


@dataclass
class ScoreTable:
    """Scores per checkpoint: x [checkpoint], ks [column], q [checkpoint, column] (NaN = not given), problems."""

    x: np.ndarray
    ks: list
    q: np.ndarray
    problems: int


def score_model(x, ln_k, k_obs, n_obs, basis, log_shock_median, shock_log_sd, with_k: bool = False):
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    from pipeline.forecast.problem_model import binomial_loglik

    A = numpyro.sample("A", dist.Normal(0.0, 5.0))
    alpha = numpyro.sample("alpha", dist.Normal(0.0, 2.0))
    beta = numpyro.sample("beta", dist.Normal(0.0, 2.0)) if with_k else 0.0
    delta = numpyro.sample("delta", dist.Normal(0.0, 1.0)) if with_k else 0.0
    sigma_s = numpyro.sample("sigma_s", dist.LogNormal(log_shock_median, shock_log_sd))
    if basis.shape[1]:
        with numpyro.plate("residual_shocks", basis.shape[1]):
            z = numpyro.sample("z_s", dist.Normal(0.0, 1.0))
        s = sigma_s * (basis @ z)
    else:
        s = jnp.zeros(x.shape[0])
    eta = A + alpha * x[:, None] + beta * ln_k[None, :] + delta * x[:, None] * ln_k[None, :] + s[:, None]
    numpyro.factor("scores", jnp.sum(binomial_loglik(k_obs, n_obs, eta, "cloglog", jnp)))


def fit_scores(table: ScoreTable, prior: ShockPrior, options: SamplerOptions) -> dict:
    """Posterior draws of A, alpha, beta, delta, sigma_s (chains flattened) and diagnostics."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC, NUTS

    from pipeline.forecast.problem_model import diagnostics

    centre = float(np.mean(table.x))
    given = ~np.isnan(table.q)
    n_obs = np.where(given, float(table.problems), 0.0)
    k_obs = np.where(given, np.nan_to_num(table.q) * table.problems, 0.0)
    with_k = len(table.ks) > 1
    mcmc = MCMC(NUTS(score_model, target_accept_prob=0.95), num_warmup=options.warmup, num_samples=options.draws,
                num_chains=options.chains, chain_method="vectorized", progress_bar=False)
    f32 = lambda v: jnp.asarray(v, dtype=jnp.float32)   # noqa: E731
    mcmc.run(jax.random.PRNGKey(options.seed), f32(table.x - centre), f32(np.log(table.ks)), f32(k_obs), f32(n_obs),
             f32(residual_basis(table.x)), f32(np.log(prior.median)), f32(prior.log_sd), with_k=with_k,
             extra_fields=("diverging",))
    by_chain = {k: np.asarray(v, dtype=float) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    diag = diagnostics({k: v for k, v in by_chain.items() if k in ("A", "alpha", "sigma_s")},
                       int(np.asarray(mcmc.get_extra_fields()["diverging"]).sum()))
    flat = {k: v.reshape(-1, *v.shape[2:]) for k, v in by_chain.items()}
    zeros = np.zeros_like(flat["A"])
    # back from the centred axis to x = 0 at the target
    return {"A": flat["A"] - flat["alpha"] * centre, "alpha": flat["alpha"],
            "beta": flat.get("beta", zeros), "delta": flat.get("delta", zeros), "sigma_s": flat["sigma_s"],
            "diagnostics": diag}


def score_forecast_draws(post: dict, x_fit: np.ndarray, ks: list, rng: np.random.Generator,
                         x_target: float = 0.0) -> dict:
    """Per k: draws of the target's pass@k, with a fresh shock and the unidentified shock line."""
    sd = post["sigma_s"] * np.sqrt(1.0 + shock_line_variance(x_fit, x_target))
    shock = sd * rng.standard_normal(len(sd))
    out = {}
    for k in ks:
        lk = np.log(k)
        eta = post["A"] + post["alpha"] * x_target + post["beta"] * lk + post["delta"] * x_target * lk + shock
        out[int(k)] = np.exp(-np.exp(-eta))
    return out
