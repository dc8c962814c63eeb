"""Draws from each problem's actual posterior over (v, k), and the shock shared by a checkpoint's problems.

A problem solved in every sample has a one-sided likelihood: any small enough -log p fits it, so the
posterior piles up against 0 and a Gaussian (Laplace) approximation, pushed through exp(), invents a
fat upper tail (a 20/20 problem forecast at a 34% pass rate). Here the Laplace Gaussian is only the
*proposal*: a widened Student-t around the mode, importance-reweighted by the exact penalised likelihood
(the same binomial likelihood and priors the mode was fitted with), then resampled per problem.

``checkpoint_shocks`` estimates how much all problems at one checkpoint move together (a checkpoint that
is simply a bit better or worse): the spread of a common offset in eta per checkpoint, net of binomial noise.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.forecast.problem_laws import ETA_MAX, ETA_MIN, ProblemLaws, _loglik, _score

PROPOSAL_DOF, PROPOSAL_SCALE = 4.0, 1.6   # heavy-tailed and wider than the Laplace Gaussian
SHOCK_MIN_DOF = 2


@dataclass
class PosteriorDraws:
    """[draw, problem] draws of (v, k), equally weighted, and each problem's importance-sampling ESS."""

    v: np.ndarray
    k: np.ndarray
    ess: np.ndarray


def posterior_draws(laws: ProblemLaws, x: np.ndarray, n: np.ndarray, passed: np.ndarray, draws: int,
                    rng: np.random.Generator) -> PosteriorDraws:
    """Sampling-importance-resampling from every problem's exact posterior (given the pooled prior)."""
    proposals = 2 * draws
    p = len(laws.v)
    chol = np.linalg.cholesky(laws.cov * PROPOSAL_SCALE**2 + 1e-12 * np.eye(2))
    z = rng.standard_normal((proposals, p, 2))
    radius = np.sqrt(rng.chisquare(PROPOSAL_DOF, size=(proposals, p)) / PROPOSAL_DOF)
    t = z / radius[:, :, None]
    theta = np.stack([laws.v, laws.k], axis=1)[None] + np.einsum("pij,bpj->bpi", chol, t)
    log_proposal = -0.5 * (PROPOSAL_DOF + 2) * np.log1p(np.sum(t**2, axis=2) / PROPOSAL_DOF)
    log_post = _log_posterior(laws, x, n, passed, theta[:, :, 0], theta[:, :, 1])
    log_w = log_post - log_proposal
    log_w -= log_w.max(axis=0, keepdims=True)
    w = np.exp(log_w)
    w /= w.sum(axis=0, keepdims=True)
    ess = 1.0 / np.sum(w**2, axis=0)
    # systematic resampling, per problem
    u = (rng.random(p)[None, :] + np.arange(draws)[:, None]) / draws
    index = np.minimum(np.array([np.searchsorted(np.cumsum(w[:, i]), u[:, i]) for i in range(p)]).T, proposals - 1)
    index = rng.permuted(index, axis=0)   # draws of different problems independent of each other's order
    cols = np.arange(p)[None, :]
    return PosteriorDraws(theta[index, cols, 0], theta[index, cols, 1], ess)


def _log_posterior(laws, x, n, passed, v, k):
    """[draw, problem] log of likelihood^(1/dispersion) x priors, as in fit_problem_laws."""
    xc = np.asarray(x, dtype=float) - laws.x_bar
    off = np.zeros(len(xc)) if laws.offset is None else laws.offset
    eta = np.clip(v[:, None, :] - k[:, None, :] * xc[None, :, None] + off[None, :, None], ETA_MIN, ETA_MAX)
    loglik = _loglik(eta, n[None], passed[None], laws.truncated, laws.link).sum(axis=1) / laws.dispersion
    v_prior = laws.v_prior if laws.v_prior is not None else laws.v
    return (loglik - 0.5 * ((v - v_prior) / laws.v_prior_sd) ** 2
            - 0.5 * ((k - laws.k_prior) / laws.k_prior_sd) ** 2)


def checkpoint_shocks(laws: ProblemLaws, x: np.ndarray, n: np.ndarray, passed: np.ndarray) -> tuple[float, np.ndarray]:
    """(sd of the shared per-checkpoint shock in eta, the shocks estimated at the fit checkpoints).

    One scoring step for a common offset per checkpoint at the fitted laws gives s_j = sum_i g_ij / sum_i w_ij
    with noise variance 1 / sum_i w_ij. Shocks are what is left after a quadratic in log C: the per-problem laws
    absorb the linear part, and a smooth bend shared by all problems is a wrong law (emergence, curvature), which
    the laws' weights and the backtests judge, not a shock. So J - 3 degrees of freedom, and at least
    SHOCK_MIN_DOF of them (5 checkpoints) before a shock is estimated at all.
    """
    sd, shocks, _ = _shock_estimate(laws, x, n, passed)
    return sd, shocks


def _shock_estimate(laws, x, n, passed) -> tuple[float, np.ndarray, np.ndarray]:
    """(shock sd, shocks, [ckpt] noise variance of each raw shock); see checkpoint_shocks."""
    x = np.asarray(x, dtype=float)
    eta = laws.fit_eta(x)
    g, w = _score(eta, n, passed, laws.truncated, laws.link)
    info = np.maximum(w.sum(axis=1), 1e-12)
    raw = g.sum(axis=1) / info
    noise = laws.dispersion / info
    dof = len(x) - 3
    if dof < SHOCK_MIN_DOF:   # 4 checkpoints leave one degree of freedom: a shock cannot be told from noise
        return 0.0, np.zeros(len(x)), noise
    design = _smooth_design(x)
    hat = design @ np.linalg.pinv(design)
    shocks = raw - hat @ raw
    excess = (np.sum(shocks**2) - np.sum((1.0 - np.diag(hat)) * noise)) / dof
    return float(np.sqrt(max(excess, 0.0))), shocks, noise


def _smooth_design(x: np.ndarray) -> np.ndarray:
    u = (x - x.mean()) / max(float(np.ptp(x)), 1e-12)
    return np.stack([np.ones_like(u), u, u * u], axis=1)


def shock_offsets(laws: ProblemLaws, x: np.ndarray, n: np.ndarray, passed: np.ndarray) -> tuple[float, np.ndarray]:
    """(shock sd, [ckpt] offsets in eta that take the estimated shared shocks out of a refit).

    Each problem's law weighs the checkpoints by its own binomial information (easy problems learn their
    exponent from small checkpoints, hard ones from large), so a shock shared by all problems bends every
    problem's fit differently. The offsets are the shocks (already free of any smooth trend) shrunk by
    sd^2 / (sd^2 + noise_j): the smooth part of the shocks cannot be told from the laws and stays in them (the
    widening allows for it).
    """
    sd, shocks, noise = _shock_estimate(laws, x, n, passed)
    if sd <= 0:
        return 0.0, np.zeros(len(x))
    return sd, shocks * sd**2 / (sd**2 + noise)
