"""One generative model of every (checkpoint, problem) pass count, fitted by NUTS.

    c_ij ~ Binomial(n_ij, p_ij),   g(p_ij) = a_j + b_j x_i + s_i,   x_i = ln(C_i / C_target) <= 0

- ``g`` is the link: ``cloglog`` (g(p) = -ln(-ln p), so -ln p_j = e^{-a_j} (C/C_T)^{-b_j}, the GPT-4 report's
  per-problem power law) or ``logit`` (a sigmoid in ln C).
- (a_j, b_j) ~ a correlated normal population (non-centred), so problems no checkpoint solves still enter:
  their posterior is one-sided and pooled with the population.
- s_i = sigma_s z_i is a shock shared by checkpoint i's problems; sigma_s has a log-normal prior set from the
  development families (docs/forecasting.md), so it does not collapse to 0 when the data cannot estimate it.
  The target gets a fresh shock s_T ~ N(0, sigma_s) per draw.

Cells with n = 0 carry no likelihood: that is how a checkpoint is held out (leave-future-out folds) without
changing the arrays' shapes, so one compiled sampler serves every fold.

The sampler is behind ``Sampler`` (``sample_numpyro`` here; ``pymc_model`` holds the PyMC/nutpie twin used to
compare the two libraries; ``samplers.sample`` chooses); heavy imports happen only when a backend is chosen.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

LINKS = ("cloglog", "logit")


@dataclass(frozen=True)
class ShockPrior:
    """sigma_s ~ LogNormal(ln(median), log_sd): the scale of the shock shared by a checkpoint's problems."""

    median: float
    log_sd: float


def problem_shock_prior(grid: "CountGrid", link: str, prior: ShockPrior) -> ShockPrior:
    """The shock prior in the link's per-problem units from one stated on the benchmark's -ln(-ln pass@1) scale.

    A shift s of every problem's linear predictor moves -ln(-ln pass@1) by about r s, with
    r = mean_j dp_j/d eta / (Q (-ln Q)) at the largest fit checkpoint (p_j from (c + 1/2) / (n + 1), Q their mean):
    where most problems sit near 0 or 1 (bimodal counts), r is small and a given departure of the benchmark from
    its line takes a large per-problem shock."""
    used = np.flatnonzero(grid.n.sum(axis=1) > 0)
    last = used[-1] if len(used) else 0
    n, c = grid.n[last], grid.c[last]
    p = np.clip((c + 0.5) / (n + 1.0), 1e-6, 1 - 1e-6)
    slope = p * -np.log(p) if link == "cloglog" else p * (1.0 - p)
    q = float(np.clip(p.mean(), 1e-6, 1 - 1e-6))
    r = float(np.clip(slope.mean() / (q * -np.log(q)), 0.05, 2.0))
    return ShockPrior(prior.median / r, prior.log_sd)


@dataclass(frozen=True)
class SamplerOptions:
    """How many NUTS draws, chains and which library."""

    draws: int = 500
    warmup: int = 500
    chains: int = 2
    seed: int = 0
    backend: str = "numpyro"
    target_accept: float = 0.9


@dataclass
class CountGrid:
    """Pass counts on the normalised compute axis: x [checkpoint], n and c [checkpoint, problem]."""

    x: np.ndarray
    n: np.ndarray
    c: np.ndarray

    def masked(self, keep: np.ndarray) -> "CountGrid":
        """The same grid with the checkpoints where ``keep`` is False carrying no samples (held out)."""
        n = np.where(np.asarray(keep)[:, None], self.n, 0)
        return CountGrid(self.x, n, np.minimum(self.c, n))


@dataclass
class LinkPosterior:
    """Posterior draws of one link's model (chains flattened): per-problem a, b; shocks; population."""

    link: str
    a: np.ndarray            # [draw, problem]
    b: np.ndarray            # [draw, problem]
    shocks: np.ndarray       # [draw, checkpoint]
    sigma_s: np.ndarray      # [draw]
    population: dict         # mu_a, mu_b, tau_a, tau_b, rho: [draw] each
    phi: np.ndarray = None   # [draw] beta-binomial concentration of a cell's own pass rate
    diagnostics: dict = field(default_factory=dict)
    chains: int = 1

    def eta(self, x: float, shock: np.ndarray) -> np.ndarray:
        """Linear predictor [draw, problem] at log-compute ``x`` with one shock per draw."""
        return self.a + self.b * x + shock[:, None]


class Sampler(Protocol):
    def __call__(self, grid: CountGrid, link: str, prior: ShockPrior, options: SamplerOptions) -> LinkPosterior: ...


def log_p(eta, link: str, xp=np):
    """ln p for the link (numerically stable on both tails)."""
    if link == "cloglog":
        return -xp.exp(-eta)
    return -xp.logaddexp(0.0, -eta)


def log1m_p(eta, link: str, xp=np):
    """ln(1 - p) for the link."""
    if link == "cloglog":
        return _log1mexp(-xp.exp(-eta), xp)
    return -xp.logaddexp(0.0, eta)


def _log1mexp(v, xp):
    """ln(1 - e^v) for v <= 0, accurate near 0 and far below it."""
    v = xp.minimum(v, -1e-30)
    return xp.where(v > -0.6931, xp.log(-xp.expm1(v)), xp.log1p(-xp.exp(v)))


def pass_probability(eta: np.ndarray, link: str) -> np.ndarray:
    """p from the linear predictor."""
    return np.exp(log_p(eta, link))


def binomial_loglik(c, n, eta, link: str, xp=np):
    """Log-likelihood of each cell (without the binomial coefficient; it cancels between laws)."""
    return c * log_p(eta, link, xp) + (n - c) * log1m_p(eta, link, xp)


def count_loglik(c, n, eta, link: str, phi=None, xp=np, gammaln=None):
    """Log-likelihood of each cell without the binomial coefficient: binomial when ``phi`` is None, else
    beta-binomial with concentration phi (the cell's own pass rate ~ Beta(p phi, (1 - p) phi): a checkpoint
    that happens to be good or bad at one problem, the flips between sizes that bimodal counts show)."""
    if phi is None:
        return binomial_loglik(c, n, eta, link, xp)
    p = xp.clip(xp.exp(log_p(eta, link, xp)), 1e-7, 1.0)
    q = xp.clip(xp.exp(log1m_p(eta, link, xp)), 1e-7, 1.0)
    alpha, beta = p * phi, q * phi
    return (gammaln(c + alpha) + gammaln(n - c + beta) - gammaln(n + phi)
            - gammaln(alpha) - gammaln(beta) + gammaln(phi))


def log_binomial_coefficient(n: np.ndarray, c: np.ndarray) -> np.ndarray:
    from scipy.special import gammaln

    return gammaln(n + 1) - gammaln(c + 1) - gammaln(n - c + 1)


def residual_basis(x: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """Orthonormal basis [checkpoint, I - 2] of the shocks' part that no straight line in x can absorb.

    iid shocks s_i ~ N(0, sigma_s) split into a line through them (absorbed by the population means of a and b,
    whose priors are flat on that scale) and the residual B z, z ~ N(0, sigma_s I): the line is not identified,
    so it is not sampled; ``shock_line_variance`` puts it back into every prediction. Rows of held-out
    checkpoints (``keep`` False) are 0; the basis is padded with zero columns to I - 2 so every fold of a grid
    has the same shapes."""
    x = np.asarray(x, dtype=float)
    keep = np.ones(len(x), dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
    width = max(len(x) - 2, 0)
    basis = np.zeros((len(x), width))
    xs = x[keep]
    if len(xs) > 2:
        design = np.column_stack([np.ones(len(xs)), xs])
        q_full, _ = np.linalg.qr(np.column_stack([design, np.eye(len(xs))]))
        basis[np.flatnonzero(keep), : len(xs) - 2] = q_full[:, 2: len(xs)]
    return basis


def shock_line_variance(x_fit: np.ndarray, x_new: float) -> float:
    """d'(X'X)^-1 d with d = (1, x_new): the variance (in sigma_s^2) that the unidentified line through the fit
    checkpoints' shocks adds at ``x_new``; a new checkpoint's own shock adds 1 more."""
    design = np.column_stack([np.ones(len(x_fit)), np.asarray(x_fit, dtype=float)])
    d = np.array([1.0, x_new])
    return float(d @ np.linalg.solve(design.T @ design, d))


def numpyro_model(x, n, c, basis, log_shock_median, shock_log_sd, link: str = "cloglog", centred: bool = True):
    """The model in NumPyro; x [I] centred on the fitted checkpoints (a is the problem's level there, so a and b
    are nearly uncorrelated a posteriori), n, c [I, J], basis [I, I - 2] (residual_basis)."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from jax.scipy.special import gammaln

    n_prob = n.shape[1]
    mu_a = numpyro.sample("mu_a", dist.Normal(0.0, 5.0))
    mu_b = numpyro.sample("mu_b", dist.Normal(0.0, 2.0))
    tau_a = numpyro.sample("tau_a", dist.HalfNormal(3.0))
    tau_b = numpyro.sample("tau_b", dist.HalfNormal(1.0))
    rho = numpyro.sample("rho", dist.Uniform(-1.0, 1.0))
    sigma_s = numpyro.sample("sigma_s", dist.LogNormal(log_shock_median, shock_log_sd))
    if basis.shape[1]:
        with numpyro.plate("residual_shocks", basis.shape[1]):
            z_s = numpyro.sample("z_s", dist.Normal(0.0, 1.0))
        s = numpyro.deterministic("s", sigma_s * (basis @ z_s))
    else:   # 2 checkpoints: a line absorbs any shocks; sigma_s only enters the forecast
        s = numpyro.deterministic("s", jnp.zeros(x.shape[0]))
    with numpyro.plate("problems", n_prob):   # b non-centred given a; a centred where the data pin each level
        if centred:
            a = numpyro.sample("a", dist.Normal(mu_a, tau_a))
        else:
            a = numpyro.deterministic("a", mu_a + tau_a * numpyro.sample("z_a", dist.Normal(0.0, 1.0)))
        z_b = numpyro.sample("z_b", dist.Normal(0.0, 1.0))
    b = numpyro.deterministic("b", mu_b + tau_b * (rho * (a - mu_a) / tau_a + jnp.sqrt(1.0 - rho ** 2) * z_b))
    phi = numpyro.sample("phi", dist.LogNormal(jnp.log(2.0), 2.0))
    eta = a[None, :] + b[None, :] * x[:, None] + s[:, None]
    numpyro.factor("counts", jnp.sum(count_loglik(c, n, eta, link, phi, jnp, gammaln)))


def sample_numpyro(grid: CountGrid, link: str, prior: ShockPrior, options: SamplerOptions,
                   keep: np.ndarray | None = None) -> LinkPosterior:
    """NUTS in NumPyro (chains vectorised on one CPU device). The compiled sampler is kept per (link, shape,
    options), so the leave-future-out folds (same shapes, other masks) reuse it instead of compiling again."""
    import jax
    import jax.numpy as jnp

    mcmc = _numpyro_mcmc(link, grid.n.shape, options, centred_levels(grid))
    centre = fit_centre(grid)
    f32 = lambda v: jnp.asarray(v, dtype=jnp.float32)   # noqa: E731
    mcmc.run(jax.random.PRNGKey(options.seed), f32(grid.x - centre), f32(grid.n), f32(grid.c),
             f32(residual_basis(grid.x, keep)), f32(np.log(prior.median)),
             f32(prior.log_sd), extra_fields=("diverging", "num_steps"))
    samples = {k: np.asarray(v, dtype=float) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    extra = mcmc.get_extra_fields()
    post = _posterior(link, samples, int(np.asarray(extra["diverging"]).sum()), options.chains, centre)
    post.diagnostics["mean_leapfrog_steps"] = float(np.mean(np.asarray(extra["num_steps"])))
    return post


_MCMC_CACHE: dict = {}


CENTRED_MIN_N = 50


def centred_levels(grid: CountGrid) -> bool:
    """Sample each problem's level a_j centred when its counts pin it (n >= 50 samples per cell), non-centred
    when they cannot: only the sampler's geometry changes, not the model. On the development families
    (n = 10-20, bimodal counts, beta-binomial cells) the centred form left R-hat up to 1.3 and bulk ESS 5-18;
    with n = 100 (simulated) the non-centred form mixed the population mean badly (R-hat 1.25)."""
    return float(np.max(grid.n)) >= CENTRED_MIN_N


def _numpyro_mcmc(link: str, shape: tuple, options: SamplerOptions, centred: bool = True):
    from functools import partial

    from numpyro.infer import MCMC, NUTS

    key = (link, shape, centred, options.draws, options.warmup, options.chains, options.target_accept)
    if key not in _MCMC_CACHE:
        if len(_MCMC_CACHE) > 8:
            _MCMC_CACHE.clear()
        kernel = NUTS(partial(numpyro_model, link=link, centred=centred), target_accept_prob=options.target_accept)
        _MCMC_CACHE[key] = MCMC(kernel, num_warmup=options.warmup, num_samples=options.draws,
                                num_chains=options.chains, chain_method="vectorized", progress_bar=False,
                                jit_model_args=True)
    return _MCMC_CACHE[key]


def fit_centre(grid: CountGrid) -> float:
    """Mean log-compute of the checkpoints that carry samples: the model's a_j is each problem's level there."""
    used = grid.n.sum(axis=1) > 0
    return float(np.mean(grid.x[used])) if used.any() else 0.0


def _posterior(link: str, by_chain: dict, divergences: int, chains: int, centre: float) -> LinkPosterior:
    """Flatten chains (a moved from the centre to x = 0) and attach ArviZ diagnostics."""
    flat = {k: v.reshape((-1,) + v.shape[2:]) for k, v in by_chain.items()}
    a0 = flat["a"] - flat["b"] * centre
    return LinkPosterior(link, a0, flat["b"], flat["s"], flat["sigma_s"],
                         {k: flat[k] for k in ("mu_a", "mu_b", "tau_a", "tau_b", "rho")}, flat["phi"],
                         diagnostics(by_chain, divergences), chains)


DIAGNOSED = ("mu_a", "mu_b", "tau_a", "tau_b", "rho", "sigma_s", "phi", "a", "b")


def diagnostics(by_chain: dict, divergences: int) -> dict:
    """Worst R-hat and bulk ESS over the population parameters and every problem's a, b; divergences."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import arviz as az

        data = az.from_dict(posterior={k: by_chain[k] for k in DIAGNOSED if k in by_chain})
        rhat = az.rhat(data)
        ess = az.ess(data, method="bulk")
    worst_rhat = max(float(np.nanmax(rhat[k].values)) for k in rhat.data_vars)
    least_ess = min(float(np.nanmin(ess[k].values)) for k in ess.data_vars)
    return {"max_rhat": worst_rhat, "min_ess_bulk": least_ess, "divergences": divergences}
