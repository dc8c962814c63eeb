"""The same model as ``problem_model.numpyro_model`` in PyMC, sampled by nutpie (numba backend).

Kept to measure the two libraries against each other on this machine (``benchmarks/bench_problem_model.py``);
``SamplerOptions(backend="pymc")`` selects it.
"""
from __future__ import annotations

import numpy as np

from pipeline.forecast.problem_model import (CountGrid, LinkPosterior, SamplerOptions, ShockPrior, _posterior,
                                             count_loglik, fit_centre, residual_basis)


def build_pymc_model(grid: CountGrid, link: str, prior: ShockPrior, keep: np.ndarray | None = None):
    import pymc as pm
    import pytensor.tensor as pt

    centre = fit_centre(grid)
    basis = residual_basis(grid.x, keep)
    x = grid.x - centre
    with pm.Model() as model:
        mu_a = pm.Normal("mu_a", 0.0, 5.0)
        mu_b = pm.Normal("mu_b", 0.0, 2.0)
        tau_a = pm.HalfNormal("tau_a", 3.0)
        tau_b = pm.HalfNormal("tau_b", 1.0)
        rho = pm.Uniform("rho", -1.0, 1.0)
        sigma_s = pm.LogNormal("sigma_s", np.log(prior.median), prior.log_sd)
        if basis.shape[1]:
            z_s = pm.Normal("z_s", 0.0, 1.0, shape=basis.shape[1])
            s = pm.Deterministic("s", sigma_s * pt.dot(basis, z_s))
        else:
            s = pm.Deterministic("s", pt.zeros(len(x)))
        a = pm.Normal("a", mu_a, tau_a, shape=grid.n.shape[1])
        z_b = pm.Normal("z_b", 0.0, 1.0, shape=grid.n.shape[1])
        b = pm.Deterministic("b", mu_b + tau_b * (rho * (a - mu_a) / tau_a + pt.sqrt(1.0 - rho ** 2) * z_b))
        phi = pm.LogNormal("phi", np.log(2.0), 2.0)
        eta = a[None, :] + b[None, :] * x[:, None] + s[:, None]
        pm.Potential("counts", pt.sum(count_loglik(grid.c, grid.n, eta, link, phi, _PtOps(), pt.gammaln)))
    return model, centre


class _PtOps:
    """The few numpy functions count_loglik uses, from pytensor."""

    def __getattr__(self, name):
        import pytensor.tensor as pt

        return {"logaddexp": lambda u, v: pt.logaddexp(u, v)}.get(name) or getattr(pt, name)


def sample_pymc(grid: CountGrid, link: str, prior: ShockPrior, options: SamplerOptions,
                keep: np.ndarray | None = None) -> LinkPosterior:
    import nutpie

    model, centre = build_pymc_model(grid, link, prior, keep)
    compiled = nutpie.compile_pymc_model(model)
    trace = nutpie.sample(compiled, draws=options.draws, tune=options.warmup, chains=options.chains,
                          seed=options.seed, progress_bar=False, target_accept=options.target_accept, cores=1)
    post = trace.posterior
    by_chain = {k: np.asarray(post[k].values, dtype=float) for k in ("a", "b", "s", "sigma_s", "mu_a", "mu_b", "tau_a",
                                                                      "tau_b", "rho", "phi")}
    divergences = int(trace.sample_stats["diverging"].values.sum())
    out = _posterior(link, by_chain, divergences, options.chains, centre)
    out.diagnostics["mean_leapfrog_steps"] = float(trace.sample_stats["n_steps"].values.mean())
    return out
