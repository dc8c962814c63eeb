"""Weigh the model's shapes (links) by out-of-sample evidence and draw the target from the weighted mixture.

- With >= 3 fit checkpoints: leave-future-out. Each link is refitted with the largest fit checkpoints held
  out one at a time (the fold keeps every smaller one, at least 2); each problem's held-out counts are scored
  by their predictive density, the held-out checkpoint's shock drawn fresh from the fold's sigma_s. This is
  the forecast's own question (the next, larger checkpoint) asked inside the data.
- With 2 fit checkpoints no future can be left out; PSIS-LOO over problems (each problem's counts at both
  checkpoints left out in turn) is the out-of-sample evidence there is: how well each shape describes a
  problem it has not seen.

Either way the pointwise densities go to ArviZ's ``compare(method="stacking")`` (Yao et al. 2018), and the
target's draws are a mixture of the links' draws in those proportions.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from pipeline.forecast.problem_model import (CountGrid, LinkPosterior, SamplerOptions, ShockPrior,  # noqa: F401
                                             count_loglik, log_binomial_coefficient, pass_probability,
                                             shock_line_variance)
from pipeline.forecast.samplers import sample


@dataclass
class Weighing:
    """Stacking weights per link and how they were found."""

    weights: dict
    method: str                  # "leave-future-out stacking", "PSIS-LOO stacking" or "single link"
    folds: list                  # held-out checkpoint indices (leave-future-out)
    elpd: dict                   # summed pointwise elpd per link
    pareto_k_max: dict | None = None


def predictive_eta(post: LinkPosterior, x_fit: np.ndarray, x_new: float, rng: np.random.Generator) -> np.ndarray:
    """[draw, problem] linear predictor at a new checkpoint: the problem's line plus the new checkpoint's own
    shock and the unidentified line through the fit checkpoints' shocks, both of scale sigma_s."""
    sd = post.sigma_s * np.sqrt(1.0 + shock_line_variance(x_fit, x_new))
    return post.eta(x_new, sd * rng.standard_normal(len(sd)))


def fold_lpd(post: LinkPosterior, grid: CountGrid, keep: np.ndarray, held: int, rng: np.random.Generator) -> np.ndarray:
    """Per problem: log predictive density of the held-out checkpoint's counts."""
    eta = predictive_eta(post, grid.x[keep], float(grid.x[held]), rng)
    n, c = grid.n[held], grid.c[held]
    ll = _loglik(c[None, :], n[None, :], eta, post) + log_binomial_coefficient(n, c)[None, :]
    return logsumexp(ll, axis=0) - np.log(ll.shape[0])


def lfo_folds(n_checkpoints: int, max_folds: int) -> list[int]:
    """Indices of the fit checkpoints to hold out, largest first, each fold keeping >= 2 smaller ones."""
    return [h for h in range(n_checkpoints - 1, 1, -1)][:max_folds]


def weigh(grid: CountGrid, posts: dict, priors: dict, options: SamplerOptions, max_folds: int,
          rng: np.random.Generator) -> Weighing:
    """Stacking weights of the links in ``posts`` (fitted on the whole grid; ``priors``: each link's shock prior)."""
    links = list(posts)
    if len(links) == 1:
        return Weighing({links[0]: 1.0}, "single link", [], {})
    folds = lfo_folds(len(grid.x), max_folds)
    if folds:
        pointwise = {}
        for link in links:
            rows = []
            for held in folds:
                keep = np.arange(len(grid.x)) < held
                post = sample(grid, link, priors[link], options, keep=keep)
                rows.append(fold_lpd(post, grid, keep, held, rng))
            pointwise[link] = np.concatenate(rows)
        weights = stacking_weights(pointwise)
        return Weighing(weights, "leave-future-out stacking", folds,
                        {k: float(v.sum()) for k, v in pointwise.items()})
    return _loo_weighing(grid, posts)


def _loo_weighing(grid: CountGrid, posts: dict) -> Weighing:
    import arviz as az

    elpds, pareto = {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for link, post in posts.items():
            ll = problem_loglik(post, grid).reshape(post.chains, -1, grid.n.shape[1])
            data = az.from_dict(posterior={"b": post.b.reshape(post.chains, -1, grid.n.shape[1])},
                                log_likelihood={"counts": ll})
            elpds[link] = az.loo(data, pointwise=True)
            pareto[link] = float(np.nanmax(elpds[link]["pareto_k"].values))
        table = az.compare(elpds, method="stacking")
    weights = {link: float(table.loc[link, "weight"]) for link in posts}
    return Weighing(weights, "PSIS-LOO stacking", [], {k: float(v["elpd_loo"]) for k, v in elpds.items()}, pareto)


def problem_loglik(post: LinkPosterior, grid: CountGrid) -> np.ndarray:
    """[draw, problem] log-likelihood of each problem's counts over the fit checkpoints."""
    eta = post.a[:, None, :] + post.b[:, None, :] * grid.x[None, :, None] + post.shocks[:, :, None]
    ll = _loglik(grid.c[None], grid.n[None], eta, post)
    return ll.sum(axis=1) + log_binomial_coefficient(grid.n, grid.c).sum(axis=0)[None, :]


def _loglik(c, n, eta, post: LinkPosterior) -> np.ndarray:
    from scipy.special import gammaln

    phi = None if post.phi is None else post.phi.reshape((-1,) + (1,) * (eta.ndim - 1))
    return count_loglik(c, n, eta, post.link, phi, np, gammaln)


def stacking_weights(pointwise: dict) -> dict:
    """ArviZ stacking over precomputed pointwise elpd (one entry per held-out problem and fold)."""
    import arviz as az
    import xarray as xr
    from arviz.stats.stats_utils import ELPDData

    elpds = {}
    for link, values in pointwise.items():
        values = np.asarray(values, dtype=float)
        elpds[link] = ELPDData(
            data=[float(values.sum()), float(np.sqrt(len(values) * np.var(values))), 0.0, 0, len(values), False,
                  xr.DataArray(values, dims=["observation"]).rename("loo_i"), np.zeros(len(values)), "log", True],
            index=["elpd_loo", "se", "p_loo", "n_samples", "n_data_points", "warning", "loo_i", "pareto_k", "scale",
                   "good_k"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = az.compare(elpds, method="stacking")
    return {link: float(table.loc[link, "weight"]) for link in pointwise}


def target_draws(posts: dict, weighing: Weighing, x_fit: np.ndarray, rng: np.random.Generator,
                 x_target: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """([draw, problem] pass probabilities at the target, [draw] link index) from the weighted mixture."""
    links = list(posts)
    total = min(len(p.sigma_s) for p in posts.values())
    counts = rng.multinomial(total, [weighing.weights[link] for link in links])
    parts, which = [], []
    for i, (link, count) in enumerate(zip(links, counts)):
        if count == 0:
            continue
        post = posts[link]
        chosen = rng.choice(len(post.sigma_s), size=count, replace=False)
        eta = predictive_eta(post, x_fit, x_target, rng)[chosen]
        parts.append(cell_rates(pass_probability(eta, link), None if post.phi is None else post.phi[chosen], rng))
        which.append(np.full(count, i))
    order = rng.permutation(total)
    return np.concatenate(parts)[order], np.concatenate(which)[order]


def cell_rates(p: np.ndarray, phi: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """The target's own per-problem pass rates: the curve's p with the cell's beta deviation (none without phi)."""
    if phi is None:
        return p
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return rng.beta(p * phi[:, None], (1 - p) * phi[:, None])


def fit_links(grid: CountGrid, links: tuple, prior: ShockPrior, options: SamplerOptions) -> dict:
    """Each link fitted on the whole grid."""
    return {link: sample(grid, link, prior, options) for link in links}
