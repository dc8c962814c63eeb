"""Each problem's own law, fitted to binomial counts:  eta_i(x) = v_i - k_i (x - x_bar),  x = log C.

Two links (two laws of different shape):
- ``loglog`` (the power law):  -log p = exp(eta), i.e. -log p_i(C) = alpha_i C^(-k_i);
- ``logit`` (a sigmoid in log C, emergence):  log((1 - p) / p) = eta, i.e. p = 1 / (1 + exp(eta)).
Near p = 1 both say log(1 - p) ~ eta; they differ for hard problems, where the sigmoid rises steeply.

Each is a binomial GLM (eta linear in log compute), so counts of 0 and n are used as they are, with no
log(0). All problems are fitted at once by vectorised Fisher scoring
(hand-rolled: 2x2 systems per problem; scipy has no batched GLM). A Gaussian prior on k_i, centred on
the family's typical exponent with a spread estimated from the data (DerSimonian-Laird), pools the
exponents across problems: the "hierarchical" part that keeps 10-300x extrapolations stable.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ETA_MIN, ETA_MAX = -30.0, 6.0   # -log p between 1e-13 and ~400: beyond that counts carry no information
V_PRIOR_SD = 5.0                 # weak prior on v_i, only to keep always-solved problems finite
TAU_MIN = 0.005                  # floor on the estimated exponent spread
T_DOF, T_ITERATIONS = 4.0, 3     # Student-t prior on exponents (degrees of freedom, EM rounds)
V_POOL_WIDTH = 1.0                # the pooled difficulty prior: this many robust sds of the fitted difficulties
V_POOL_MIN_SD = 1.5
POOL_SLOPE_Z = 2.0                # the difficulty slope enters the exponent pool only beyond this many se


@dataclass
class ProblemLaws:
    """Fitted per-problem laws on the normalised axis x = log(C / C_target)."""

    v: np.ndarray        # eta at x_bar, per problem (log(-log p) for the power law)
    k: np.ndarray        # exponent per problem
    cov: np.ndarray      # [problem, 2, 2] covariance of (v, k) (inverse penalised information)
    x_bar: float
    k_prior: np.ndarray  # prior mean of each k_i
    k_prior_sd: np.ndarray  # prior sd of each k_i (t-prior: wider for outlying problems)
    tau: float = 1.0                         # pooled spread of the exponents
    dispersion: float = 1.0                  # quasi-likelihood scale: extra-binomial variation between cells
    prior_design: np.ndarray | None = None   # rows X_i with prior mean X_i @ b (hierarchical fits)
    prior_cov: np.ndarray | None = None      # cov(b): uncertainty of the pooled prior, shared by all problems
    link: str = "loglog"
    v_prior: np.ndarray | None = None        # prior mean of each v_i
    v_prior_sd: float = V_PRIOR_SD           # its prior sd
    truncated: bool = False
    offset: np.ndarray | None = None         # [fit checkpoint] known shift of eta there (a shared shock taken out)

    def fit_eta(self, x: np.ndarray) -> np.ndarray:
        """[ckpt, problem] eta at the fit checkpoints x, offsets included."""
        xc = np.asarray(x, dtype=float) - self.x_bar
        off = np.zeros(len(xc)) if self.offset is None else self.offset
        return np.clip(self.v[None, :] - self.k[None, :] * xc[:, None] + off[:, None], ETA_MIN, ETA_MAX)

    def log_lambda(self, x: float) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of log(-log p_i) at x, per problem."""
        d = np.array([1.0, -(x - self.x_bar)])
        return self.v - self.k * (x - self.x_bar), np.einsum("i,pij,j->p", d, self.cov, d)

    def k_se(self) -> np.ndarray:
        return np.sqrt(self.cov[:, 1, 1])


def _log1m_exp_neg(a):
    """log(1 - exp(-a)) for a > 0, accurate at both ends."""
    a = np.maximum(a, 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):   # np.where evaluates both branches
        return np.where(a < np.log(2.0), np.log(-np.expm1(-a)), np.log1p(-np.exp(-a)))


LINKS = ("loglog", "logit")


def log_pass(eta, link: str = "loglog"):
    """log p at linear predictor eta."""
    return -np.exp(eta) if link == "loglog" else -np.logaddexp(0.0, eta)


def _log_p_q(eta, link):
    """(log p, log(1 - p)) at eta."""
    if link == "loglog":
        lam = np.exp(eta)
        return -lam, _log1m_exp_neg(lam)
    return -np.logaddexp(0.0, eta), -np.logaddexp(0.0, -eta)


def _loglik(eta, n, c, truncated, link="loglog"):
    log_p, log_q = _log_p_q(eta, link)
    value = c * log_p + (n - c) * log_q
    if truncated:   # selected because c >= 1: condition on it, else hard problems look easy
        value = value - np.where(n > 0, _log1m_exp_neg(-n * log_q), 0.0)
    return value


def _score(eta, n, c, truncated, link):
    """(d loglik / d eta, Fisher weight) per cell."""
    if link == "loglog":
        lam = np.exp(eta)
        em1 = np.expm1(lam)
        dlogq, g, w = lam / em1, lam * (-c + (n - c) / em1), n * lam**2 / em1
    else:
        s = 1.0 / (1.0 + np.exp(-eta))          # 1 - p
        dlogq, g, w = 1.0 - s, (n - c) - n * s, n * s * (1.0 - s)
    if truncated:   # d/d eta of -log(1 - (1-p)^n)
        log_q = _log_p_q(eta, link)[1]
        log_s = _log1m_exp_neg(-n * log_q)
        g = g + np.where(n > 0, n * dlogq * np.exp(n * log_q - log_s), 0.0)
    return g, w


def fit_problem_laws(x: np.ndarray, n: np.ndarray, passed: np.ndarray, k_prior, tau,
                     truncated: bool = False, dispersion: float = 1.0, iterations: int = 100,
                     link: str = "loglog", v_prior=None, v_sd: float = V_PRIOR_SD, offset=None) -> ProblemLaws:
    """MAP fit of every problem's (v, k) with k_i ~ N(k_prior_i, tau^2) and v_i ~ N(v_prior_i, v_sd^2) (v_prior
    defaults to the problem's own pooled pass rate); x [ckpt], n/passed [ckpt, problem]; ``offset`` [ckpt] is
    added to eta at each checkpoint (a known shared shock)."""
    x = np.asarray(x, dtype=float)
    off = np.zeros(len(x)) if offset is None else np.asarray(offset, dtype=float)
    n, c = np.asarray(n, dtype=float), np.asarray(passed, dtype=float)
    x_bar = float(np.sum(x * n.sum(axis=1)) / max(n.sum(), 1.0))
    xc = x - x_bar
    rate = np.clip((c + 0.5) / (n + 1.0), 1e-6, 1 - 1e-6)
    mean_rate = np.mean(rate, axis=0)
    v0 = np.log(-np.log(mean_rate)) if link == "loglog" else np.log((1 - mean_rate) / mean_rate)
    k_prior = np.broadcast_to(np.asarray(k_prior, dtype=float), v0.shape).copy()
    theta = np.stack([v0, k_prior], axis=1)
    v_mean = v0.copy() if v_prior is None else np.broadcast_to(np.asarray(v_prior, dtype=float), v0.shape).copy()
    prior_mean = np.stack([v_mean, k_prior], axis=1)
    k_sd = np.broadcast_to(np.asarray(tau, dtype=float), v0.shape)
    prior_prec = np.stack([np.full(v0.shape, 1 / v_sd**2), 1 / k_sd**2], axis=1)

    def eta_at(th):   # [ckpt, problem]
        return np.clip(th[:, 0][None, :] - th[:, 1][None, :] * xc[:, None] + off[:, None], ETA_MIN, ETA_MAX)

    def objective(th):
        eta = eta_at(th)
        return (_loglik(eta, n, c, truncated, link).sum(axis=0) / dispersion
                - 0.5 * np.sum(prior_prec * (th - prior_mean) ** 2, axis=1))

    current = objective(theta)
    for _ in range(iterations):
        eta = eta_at(theta)
        g, w = _score(eta, n, c, truncated, link)
        g, w = g / dispersion, w / dispersion
        grad = np.stack([g.sum(0), -(g * xc[:, None]).sum(0)], axis=1) - prior_prec * (theta - prior_mean)
        info = _information(w, xc, prior_prec)
        step = np.linalg.solve(info, grad[:, :, None])[:, :, 0]
        step *= np.minimum(1.0, 2.0 / np.maximum(np.abs(step).max(axis=1, keepdims=True), 1e-12))
        scale = np.ones(len(theta))
        for _halving in range(8):
            trial = theta + scale[:, None] * step
            value = objective(trial)
            worse = value < current - 1e-9
            if not worse.any():
                break
            scale[worse] *= 0.5
        trial = theta + scale[:, None] * step
        value = objective(trial)
        improved = value >= current - 1e-9
        theta[improved] = trial[improved]
        current = np.where(improved, value, current)
        if np.max(np.abs(scale[:, None] * step)) < 1e-7:
            break
    eta = eta_at(theta)
    w = _score(eta, n, c, False, link)[1]
    cov = np.linalg.inv(_information(w / dispersion, xc, prior_prec))
    laws = ProblemLaws(theta[:, 0].copy(), theta[:, 1].copy(), cov, x_bar, k_prior, k_sd.copy(),
                       link=link, v_prior=v_mean, v_prior_sd=v_sd, truncated=truncated,
                       offset=None if offset is None else off.copy())
    laws.dispersion = dispersion
    return laws


def _information(w, xc, prior_prec):
    """Fisher information of (v, k) per problem plus the prior precision: [problem, 2, 2]."""
    i00 = w.sum(0) + prior_prec[:, 0]
    i01 = -(w * xc[:, None]).sum(0)
    i11 = (w * xc[:, None] ** 2).sum(0) + prior_prec[:, 1]
    return np.stack([np.stack([i00, i01], -1), np.stack([i01, i11], -1)], -2)


def pool_design(v: np.ndarray) -> np.ndarray:
    """Rows [1, v_i - mean v]; intercept only when difficulties barely differ or problems are few."""
    if len(v) < 5 or np.std(v) < 1e-6:
        return np.ones((len(v), 1))
    return np.stack([np.ones_like(v), v - np.mean(v)], axis=1)


def exponent_pool(v: np.ndarray, k: np.ndarray, k_var: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Random-effects meta-regression of exponents on difficulty: k_i ~ N(b0 + b1 (v_i - mean v), tau^2).

    Returns (b, cov(b), tau), tau by the DerSimonian-Laird moment estimator. Regressing on v matters:
    the problems that dominate the mean -log p at the target are the ones that improve slowly, and a
    prior that ignores this pulls their exponents up and the forecast too high. But a slope the data cannot
    tell from 0 (|b1| < POOL_SLOPE_Z standard errors: few samples, few checkpoints) only adds its noise to every
    problem's prior, so then the pool is the intercept alone (b has one entry).
    """
    design = pool_design(v)
    b, cov, tau = _meta_regression(design, k, k_var)
    if len(b) == 2 and abs(b[1]) < POOL_SLOPE_Z * np.sqrt(cov[1, 1]):
        b, cov, tau = _meta_regression(design[:, :1], k, k_var)
    return b, cov, tau


def _meta_regression(design: np.ndarray, k: np.ndarray, k_var: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    w = 1.0 / k_var
    xtwx = design.T @ (w[:, None] * design)
    b_fixed = np.linalg.solve(xtwx, design.T @ (w * k))
    q = np.sum(w * (k - design @ b_fixed) ** 2)
    trace = np.sum(w) - np.trace(np.linalg.solve(xtwx, design.T @ (w[:, None] ** 2 * design)))
    tau2 = max(TAU_MIN**2, (q - (len(k) - design.shape[1])) / trace) if trace > 0 else TAU_MIN**2
    w_re = 1.0 / (k_var + tau2)
    cov = np.linalg.inv(design.T @ (w_re[:, None] * design))
    return cov @ (design.T @ (w_re * k)), cov, float(np.sqrt(tau2))


def fit_hierarchical(x: np.ndarray, n: np.ndarray, passed: np.ndarray, k_start: float | None = None,
                     truncated: bool = False, link: str = "loglog", offset=None) -> ProblemLaws:
    """Two-stage empirical Bayes: near-free per-problem fits, pool the exponents, refit with that prior."""
    k_start = (0.3 if link == "loglog" else 1.0) if k_start is None else k_start
    free = fit_problem_laws(x, n, passed, truncated=truncated, k_prior=k_start, tau=1.0, link=link, offset=offset)
    if len(free.k) < 3:
        k_mean = float(np.sum(free.k / free.cov[:, 1, 1]) / np.sum(1 / free.cov[:, 1, 1]))
        laws = fit_problem_laws(x, n, passed, truncated=truncated, k_prior=k_mean, tau=1.0, link=link, offset=offset)
        laws.prior_design, laws.prior_cov = np.ones((len(free.k), 1)), np.array([[1.0 / np.sum(1 / free.cov[:, 1, 1])]])
        return laws
    phi = pearson_dispersion(free, x, n, passed)
    b, b_cov, tau = exponent_pool(free.v, free.k, free.cov[:, 1, 1] * phi)
    design = pool_design(free.v)[:, :len(b)]
    k_sd = np.full(len(free.k), tau)
    # difficulties pooled too (weakly): a problem solved once in every n at every checkpoint is, under the
    # selection-truncated likelihood, as consistent with p -> 0 as with p = 1/n; the population decides
    v_pop = float(np.median(free.v))
    v_sd = float(max(V_POOL_MIN_SD, V_POOL_WIDTH * 1.4826 * np.median(np.abs(free.v - v_pop))))
    for _ in range(T_ITERATIONS):   # Student-t prior by EM: outlying exponents (falling problems) shrink less
        laws = fit_problem_laws(x, n, passed, truncated=truncated, k_prior=design @ b, tau=k_sd, dispersion=phi,
                                link=link, v_prior=v_pop, v_sd=v_sd, offset=offset)
        r = ((laws.k - design @ b) ** 2 + laws.cov[:, 1, 1]) / tau**2
        k_sd = tau / np.sqrt((T_DOF + 1) / (T_DOF + r))
    laws = fit_problem_laws(x, n, passed, truncated=truncated, k_prior=design @ b, tau=k_sd, dispersion=phi,
                            link=link, v_prior=v_pop, v_sd=v_sd, offset=offset)
    laws.tau = tau
    laws.prior_design, laws.prior_cov = design, b_cov
    return laws


def pearson_dispersion(laws: ProblemLaws, x: np.ndarray, n: np.ndarray, passed: np.ndarray) -> float:
    """Pearson chi^2 / dof over well-populated cells (n p (1-p) >= 1), floored at 1: extra-binomial noise."""
    eta = laws.fit_eta(x)
    p = np.clip(np.exp(log_pass(eta, laws.link)), 1e-9, 1 - 1e-9)
    var = n * p * (1 - p)
    cells = var >= 1.0
    dof = cells.sum() * (1.0 - 2.0 * n.shape[1] / max(n.size, 1))
    if dof < 10:
        return 1.0
    return float(max(1.0, np.sum((passed - n * p)[cells] ** 2 / var[cells]) / dof))


def falling_problems(x: np.ndarray, n: np.ndarray, passed: np.ndarray, z: float = 2.576) -> np.ndarray:
    """Indices of problems whose pass rate falls with scale: fitted k_i + z*se < 0 (one-sided 0.5%)."""
    has_data = ((n > 0).sum(axis=0) >= 3) & (passed.sum(axis=0) > 0)
    if not has_data.any():
        return np.array([], dtype=int)
    laws = fit_problem_laws(x, n[:, has_data], passed[:, has_data], k_prior=0.0, tau=1.0)
    flagged = laws.k + z * laws.k_se() < 0
    return np.flatnonzero(has_data)[flagged]
