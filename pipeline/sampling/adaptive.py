"""Adaptive sampling: plan each round's samples so the forecast's standard error falls fastest per sample.

The design (recorded in plan.json, never changed once cells are allocated, so estimators stay unbiased):

1. Pilot: every (checkpoint, task_id) cell gets ``pilot`` samples. They are used only to plan.
2. Allocation, once, from the pilot: each cell gets a number of successes r >= 1 and starts its
   sequential phase at ``start`` = its sample count then. r is chosen to minimise the forecast's
   variance  sum_m g_m^2 Var(mean_i log p_mi) / mu_m^2  for ``samples_per_cell`` samples per cell, where
   g_m is checkpoint m's leverage on the extrapolated value of the report's log-log fit and mu_m its
   mean -log p; with Var T_r ~ (1-p) psi'(r) and cost r/p the optimum is r ~ sqrt(w_m p (1-p) / lambda).
   p comes from the pilot through a logit-normal prior fitted to each checkpoint's pilot counts
   (``prior="logit-normal"``; ``"jeffreys"`` uses each cell alone): E[1-p] and E[1/p] per cell.
3. Rounds: each unfinished cell asks for about half its expected remaining draws (at most
   ``round_size``) until its r-th success after ``start`` or ``budget`` draws. Draws past the stop are
   ignored by the estimator, so round sizes never bias it; only (start, r, budget) matter.

With pilot = 0 the design is plain PassUntil: every cell samples until r successes or the budget.
Because the stop depends on the order of draws, estimates read verdicts in sample_index order.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np
from scipy import optimize, special, stats

from pipeline.errors import UserError
from pipeline.records import PassCount

DESIGN_KIND = "passuntil-rounds/1"
PRIORS = ("logit-normal", "jeffreys")
MIN_POOLED = 20     # a checkpoint needs this many problems for the logit-normal planning prior
LOW_QUANTILE = 0.2  # r is capped at budget * p_low / 2, p_low this quantile of the pilot's Jeffreys posterior


@dataclass(frozen=True)
class CellDesign:
    """One cell's stopping rule: the r-th success at or after sample index ``start``, or ``budget`` draws."""

    start: int
    start_passed: int
    r: int
    budget: int


@dataclass
class Design:
    """The recorded sampling design; ``cells`` is filled once, when the pilot is complete."""

    r: int = 1                       # successes per cell without a pilot, and for the target
    budget: int = 2000               # most draws per cell in the sequential phase
    pilot: int = 10                  # samples per cell before allocation (0: plain PassUntil)
    round_size: int = 200            # most new samples per cell per round
    samples_per_cell: float = 40.0   # allocation budget, in samples per fit cell (pilot included)
    r_max: int = 200
    prior: str = "logit-normal"      # planning pass rates: "logit-normal" (pooled per checkpoint) or "jeffreys"
    target: str | None = None
    target_compute: float | None = None
    cells: dict[tuple[str, str], CellDesign] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("r", "budget", "round_size", "r_max"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise UserError(f"design field '{name}' must be an integer >= 1, got {getattr(self, name)!r}")
        if not isinstance(self.pilot, int) or self.pilot < 0:
            raise UserError(f"design field 'pilot' must be an integer >= 0, got {self.pilot!r}")
        if self.budget < self.r:
            raise UserError(f"design field 'budget' ({self.budget}) must be at least r ({self.r})")
        if self.prior not in PRIORS:
            raise UserError(f"design field 'prior' must be one of {', '.join(PRIORS)}, got {self.prior!r}")
        if not self.samples_per_cell > 0:
            raise UserError(f"design field 'samples_per_cell' must be positive, got {self.samples_per_cell}")

    def to_json(self) -> dict:
        out = {"kind": DESIGN_KIND, **{f.name: getattr(self, f.name) for f in fields(self) if f.name != "cells"}}
        out["cells"] = [{"checkpoint": c, "task_id": t, **asdict(d)} for (c, t), d in sorted(self.cells.items())]
        return out

    @classmethod
    def from_json(cls, obj: dict, source: str = "design") -> "Design":
        if not isinstance(obj, dict) or obj.get("kind") != DESIGN_KIND:
            raise UserError(f"{source}: field 'design.kind' should be {DESIGN_KIND!r}; is this a plan.json "
                            f"written by `capforecast plan`?")
        known = {f.name for f in fields(cls)} - {"cells"}
        unknown = sorted(set(obj) - known - {"kind", "cells"})
        if unknown:
            raise UserError(f"{source}: unknown design field(s) {', '.join(unknown)}")
        cells = {}
        for i, cell in enumerate(obj.get("cells", [])):
            try:
                cells[(cell["checkpoint"], cell["task_id"])] = CellDesign(
                    int(cell["start"]), int(cell["start_passed"]), int(cell["r"]), int(cell["budget"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise UserError(f"{source}: field 'design.cells[{i}]' is malformed ({exc!r})") from None
        return cls(**{k: obj[k] for k in known if k in obj}, cells=cells)


@dataclass
class Plan:
    """What to sample next: n_total per cell (generation makes sample indices 0..n_total-1 exist)."""

    design: Design
    requests: list[dict]
    done: bool
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"design": self.design.to_json(), "requests": self.requests, "done": self.done,
                "new_samples": int(sum(r["n_total"] - r["n_now"] for r in self.requests)), "notes": self.notes}


def leverage_weights(compute: np.ndarray, mean_neg_log: np.ndarray, target_compute: float | None) -> np.ndarray:
    """w_m = g_m^2 / mu_m^2: how much checkpoint m's variance moves the extrapolated log(-E log p)."""
    if target_compute is None or len(np.unique(compute)) < 2:
        return np.ones(len(compute))
    x = np.log(np.asarray(compute, dtype=float) / target_compute)
    design = np.column_stack([np.ones_like(x), x])
    g = np.linalg.solve(design.T @ design, design.T)[0]       # d(intercept)/d(y_m): the value at x = 0
    return g ** 2 / np.maximum(mean_neg_log, 1e-6) ** 2


def allocate_r(p_hat: np.ndarray, weights: np.ndarray, samples: float, r_max: int, budget: int,
               p_low: np.ndarray | None = None,
               posterior: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Successes per cell minimising sum w (1-p) psi'(r) subject to sum r/p <= samples, r <= budget p_low / 2.

    ``posterior`` = (E[1/p], E[1-p]) per cell replaces 1/p_hat and 1 - p_hat (expected cost and variance).
    """
    p = np.clip(p_hat, 1.0 / budget, 1 - 1e-6)
    inverse, miss = (1 / p, 1 - p) if posterior is None else posterior
    gain = np.broadcast_to(weights, p.shape) * miss / inverse
    low = p if p_low is None else np.asarray(p_low, dtype=float)
    cap = np.clip(np.floor(0.5 * budget * low), 1, r_max)  # stop well inside the budget even if p is low

    def r_for(lam: float) -> np.ndarray:
        return np.clip(np.floor(np.sqrt(gain / lam)), 1, cap)

    def cost(lam: float) -> float:
        return float(np.minimum(r_for(lam) * inverse, budget).sum())

    lo, hi = 1e-150, 1e150
    if cost(hi) > samples:                     # even r = 1 everywhere costs more: keep the floor
        return r_for(hi).astype(int)
    for _ in range(200):
        mid = math.exp((math.log(lo) + math.log(hi)) / 2)
        lo, hi = (mid, hi) if cost(mid) > samples else (lo, mid)
        if hi / lo < 1 + 1e-9:
            break
    return r_for(hi).astype(int)


def allocate(counts: list[PassCount], design: Design) -> dict[tuple[str, str], CellDesign]:
    """Fix every cell's (start, r, budget) from the samples seen so far (called once, after the pilot)."""
    fit = [c for c in counts if c.checkpoint != design.target]
    cells = {(c.checkpoint, c.task_id): CellDesign(c.n, c.passed, design.r, design.budget)
             for c in counts if c.checkpoint == design.target}
    if not fit:
        return cells
    names = sorted({c.checkpoint for c in fit}, key=lambda n: next(c.compute for c in fit if c.checkpoint == n))
    row = {n: i for i, n in enumerate(names)}
    p_hat = np.array([(c.passed + 0.5) / (c.n + 1.0) for c in fit])
    passed, n = np.array([c.passed for c in fit]), np.array([c.n for c in fit])
    p_low = stats.beta.ppf(LOW_QUANTILE, passed + 0.5, n - passed + 0.5)  # Jeffreys lower bound
    ckpt = np.array([row[c.checkpoint] for c in fit])
    compute = np.array([next(c.compute for c in fit if c.checkpoint == n) for n in names])
    mu = np.array([-np.mean(np.log(p_hat[ckpt == j])) for j in range(len(names))])
    per_ckpt_cells = np.bincount(ckpt, minlength=len(names))
    weights = leverage_weights(compute, mu, design.target_compute) / per_ckpt_cells ** 2
    spent = sum(c.n for c in fit)
    posterior = posterior_moments(n, passed, ckpt, design.budget) if design.prior == "logit-normal" else None
    r = allocate_r(p_hat, weights[ckpt], design.samples_per_cell * len(fit) - spent, design.r_max, design.budget,
                   p_low, posterior)
    for c, rc in zip(fit, r):
        cells[(c.checkpoint, c.task_id)] = CellDesign(c.n, c.passed, int(rc), design.budget)
    return cells


def posterior_moments(n: np.ndarray, passed: np.ndarray, group: np.ndarray, budget: int,
                      nodes: int = 41) -> tuple[np.ndarray, np.ndarray]:
    """Per cell (E[1/p], E[1-p]) under a logit-normal prior fitted to each group's (checkpoint's) pilot.

    The prior's mean and sd are the marginal maximum-likelihood fit over the group's cells (Gauss-Hermite);
    one cell's few pilot draws then borrow the spread of all problems at its checkpoint. Groups of fewer
    than MIN_POOLED cells use each cell's Jeffreys estimate.
    """
    z, zw = np.polynomial.hermite_e.hermegauss(nodes)
    zw = zw / zw.sum()
    n, passed, group = np.asarray(n, float), np.asarray(passed, float), np.asarray(group)
    inverse, miss = np.empty(len(n)), np.empty(len(n))
    for g in np.unique(group):
        if np.sum(group == g) < MIN_POOLED:       # too few problems to estimate their spread: Jeffreys
            p_hat = np.clip((passed[group == g] + 0.5) / (n[group == g] + 1.0), 1.0 / budget, 1 - 1e-6)
            inverse[group == g], miss[group == g] = 1 / p_hat, 1 - p_hat
            continue
        pairs, where, size = np.unique(np.column_stack([passed[group == g], n[group == g]]), axis=0,
                                       return_inverse=True, return_counts=True)
        c, m = pairs[:, 0], pairs[:, 1]                                          # distinct (passed, n) of the group

        def pattern_like(theta):
            q = np.clip(special.expit(theta[0] + np.exp(theta[1]) * z), 1e-12, 1 - 1e-12)[None, :]  # [1, node]
            return np.exp(c[:, None] * np.log(q) + (m - c)[:, None] * np.log1p(-q)), q

        def nll(theta):
            like, _ = pattern_like(theta)
            return -np.sum(size * np.log(like @ zw + 1e-300))

        raw = np.sum(size * (c + 0.5) / (m + 1)) / np.sum(size)
        fit = optimize.minimize(nll, [special.logit(raw), 0.0], method="Nelder-Mead")
        like, q = pattern_like(fit.x)
        post = like * zw
        post /= post.sum(axis=1, keepdims=True)
        floor = np.maximum(q[0], 1.0 / budget)
        inverse[group == g], miss[group == g] = (post @ (1 / floor))[where.ravel()], (post @ (1 - q[0]))[where.ravel()]
    return inverse, miss


def next_totals(n, passed, start, start_passed, r, budget, round_size: int, step: float = 0.5) -> np.ndarray:
    """Samples each cell should have after the next round (= n when its stopping rule is met)."""
    n, passed = np.asarray(n), np.asarray(passed)
    draws, successes = n - np.asarray(start), passed - np.asarray(start_passed)
    need, left = np.asarray(r) - successes, np.asarray(budget) - draws
    p_hat = (passed + 0.5) / (n + 1.0)
    ask = np.clip(np.ceil(step * np.maximum(need, 0) / p_hat), 1, np.minimum(round_size, np.maximum(left, 1)))
    return np.where((need > 0) & (left > 0), n + ask, n).astype(int)


def plan_next_round(counts: list[PassCount], design: Design, cells: list[tuple[str, str]] | None = None) -> Plan:
    """The next round's requests for every cell in counts (and any extra ``cells`` with no samples yet)."""
    by_cell = {(c.checkpoint, c.task_id): c for c in counts}
    for key in cells or []:
        by_cell.setdefault(key, PassCount(key[0], 0.0, key[1], 0, 0))
    if not by_cell:
        raise UserError("nothing to plan: no (checkpoint, task_id) cells given")
    notes: list[str] = []
    requests = []
    if not design.cells and design.pilot > 0:
        short = [c for c in by_cell.values() if c.n < design.pilot]
        if short:
            notes.append(f"pilot round: {len(short)} cell(s) below {design.pilot} samples")
            requests = [_request(c, design.pilot) for c in short]
            return Plan(design, requests, False, notes)
        design.cells = allocate(list(by_cell.values()), design)
        rs = np.array([d.r for d in design.cells.values()])
        notes.append(f"allocated r to {len(rs)} cells: median {np.median(rs):g}, max {rs.max()}")
    new = [k for k in by_cell if k not in design.cells]
    for key in new:  # a rule fixed before seeing any of the cell's draws keeps the estimator unbiased
        design.cells[key] = CellDesign(0, 0, design.r, design.budget)
    if new:
        notes.append(f"{len(new)} cell(s) new since allocation (e.g. {new[0][0]}/{new[0][1]}): "
                     f"they sample from index 0 until r = {design.r} successes or {design.budget} draws")
    keys = sorted(by_cell)
    arr = {name: np.array([getattr(by_cell[k], name) for k in keys]) for name in ("n", "passed")}
    spec = {name: np.array([getattr(design.cells[k], name) for k in keys]) for name in
            ("start", "start_passed", "r", "budget")}
    totals = next_totals(arr["n"], arr["passed"], spec["start"], spec["start_passed"], spec["r"], spec["budget"],
                         design.round_size)
    requests = [_request(by_cell[k], int(t)) for k, t in zip(keys, totals) if t > by_cell[k].n]
    return Plan(design, requests, not requests, notes)


def _request(cell: PassCount, n_total: int) -> dict:
    return {"checkpoint": cell.checkpoint, "task_id": cell.task_id, "n_total": int(n_total), "n_now": int(cell.n)}


def forecast_from_means(compute: np.ndarray, mean_log: np.ndarray, target_compute: float) -> float:
    """The report's aggregate fit: log(-E log p) linear in log C by least squares; the value at the target."""
    mean_log = np.asarray(mean_log, dtype=float)
    if np.any(mean_log >= 0):
        raise UserError("a checkpoint's mean log pass rate is >= 0; the log-log fit needs it negative")
    slope, intercept = np.polyfit(np.log(np.asarray(compute) / target_compute), np.log(-mean_log), 1)
    return float(-np.exp(intercept))
