"""Derive the shock-scale prior from the development families only (docs/forecasting.md, the split).

How far do real families depart from a straight line of -ln(-ln pass@1) in ln C? Every development family with
3 or more sizes (the ObsScaling table's development families and the development per-problem files, counted to
pass@1) enters one hierarchical model:

    K_fi ~ Binomial(N_f, Q_fi),  -ln(-ln Q_fi) = A_f + alpha_f x_fi + sigma_f z_fi,  z ~ N(0, 1)
    ln sigma_f ~ N(m, v),  m ~ N(ln 0.1, 1.5),  v ~ HalfNormal(1)

The shock prior for a new family is the posterior predictive of sigma_f, summarised as a log-normal (median,
log-sd). Run: .venv/bin/python benchmarks/derive_shock_prior.py
"""
from __future__ import annotations

import csv
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
REAL = ROOT.parent / "shared" / "data" / "realdata"

from benchmarks.real_families import DEV_OBSSCALING, DEV_FILES, obsscaling_families, per_problem_pass1  # noqa: E402


def families() -> list[tuple[str, np.ndarray, np.ndarray, int]]:
    """(name, ln C, pass@1, problems) of every development family with >= 3 sizes."""
    out = []
    for name, rows in obsscaling_families().items():
        if name in DEV_OBSSCALING and len(rows) >= 3:
            out.append((f"ObsScaling {name}", np.log([r[0] for r in rows]), np.array([r[1] for r in rows]), 164))
    for file in DEV_FILES:
        compute, q, problems = per_problem_pass1(REAL / file)
        out.append((file, np.log(compute), q, problems))
    return out


def model(fam_index, x, k, n, n_fam):
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    from pipeline.forecast.problem_model import binomial_loglik

    m = numpyro.sample("m", dist.Normal(np.log(0.1), 1.5))
    v = numpyro.sample("v", dist.HalfNormal(1.0))
    with numpyro.plate("families", n_fam):
        A = numpyro.sample("A", dist.Normal(0.0, 5.0))
        alpha = numpyro.sample("alpha", dist.Normal(0.0, 2.0))
        u = numpyro.sample("u", dist.Normal(0.0, 1.0))
    sigma = numpyro.deterministic("sigma", jnp.exp(m + v * u))
    with numpyro.plate("points", len(x)):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0))
    eta = A[fam_index] + alpha[fam_index] * x + sigma[fam_index] * z
    numpyro.factor("scores", jnp.sum(binomial_loglik(k, n, eta, "cloglog", jnp)))


def main() -> None:
    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC, NUTS

    fams = families()
    idx, xs, ks, ns = [], [], [], []
    for f, (name, lnc, q, problems) in enumerate(fams):
        centre = lnc.mean()
        idx += [f] * len(lnc)
        xs += list(lnc - centre)
        ks += list(q * problems)
        ns += [problems] * len(lnc)
        print(f"{name:<70} sizes {len(lnc)}  pass@1 {', '.join(f'{v:.3f}' for v in q)}")
    mcmc = MCMC(NUTS(model, target_accept_prob=0.95), num_warmup=2000, num_samples=2000, num_chains=2,
                chain_method="vectorized", progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0), jnp.array(idx), jnp.array(xs), jnp.array(ks), jnp.array(ns, dtype=float), len(fams))
    s = mcmc.get_samples()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import arviz as az
        data = az.from_numpyro(mcmc)
        print(az.summary(data, var_names=["m", "v", "sigma"], round_to=3).to_string())
    rng = np.random.default_rng(0)
    log_new = np.asarray(s["m"]) + np.asarray(s["v"]) * rng.standard_normal(len(s["m"]))
    print(f"\nposterior predictive of a new family's shock scale sigma_s: median {np.exp(np.median(log_new)):.4f}, "
          f"log-sd {np.std(log_new):.3f}; 5%-95% {np.exp(np.quantile(log_new, 0.05)):.4f}-"
          f"{np.exp(np.quantile(log_new, 0.95)):.4f}; divergences {int(mcmc.get_extra_fields().get('diverging', np.zeros(1)).sum())}")


if __name__ == "__main__":
    main()
