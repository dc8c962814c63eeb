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


def read_scores(path) -> tuple[list[str], np.ndarray, list[int], np.ndarray, int]:
    """(checkpoints, compute, ks, scores [checkpoint, k], problems) from ``checkpoint,compute,pass@1[,pass@10,...]
    [,problems]``; a bad field raises UserError naming file, line and field."""
    import csv
    from pathlib import Path

    from pipeline.errors import UserError

    path = Path(path)
    try:
        handle = open(path, newline="")
    except OSError as exc:
        raise UserError(f"{path}: cannot read scores: {exc.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        ks = [int(f[5:]) for f in fields if f.startswith("pass@") and f[5:].isdigit() and int(f[5:]) >= 1]
        if "checkpoint" not in fields or "compute" not in fields or 1 not in ks:
            raise UserError(f"{path}: line 1: need columns checkpoint,compute,pass@1[,pass@10,...][,problems]; "
                            f"got {','.join(fields) or 'nothing'}")
        names, compute, rows, problems = [], [], [], set()
        for line, row in enumerate(reader, start=2):
            values = []
            for field in ["compute"] + [f"pass@{k}" for k in ks] + (["problems"] if "problems" in fields else []):
                text = (row.get(field) or "").strip()
                if field != "compute" and field != "problems" and text == "":
                    values.append(np.nan)
                    continue
                try:
                    value = float(text)
                except ValueError:
                    raise UserError(f"{path}: line {line}: field {field!r} is not a number: {text!r}") from None
                bad = (value <= 0 if field == "compute" else value < 1 if field == "problems"
                       else not 0.0 <= value <= 1.0)
                if bad or not np.isfinite(value):
                    raise UserError(f"{path}: line {line}: field {field!r} out of range: {text!r}")
                values.append(value)
            names.append(row["checkpoint"])
            compute.append(values[0])
            rows.append(values[1: 1 + len(ks)])
            if "problems" in fields:
                problems.add(int(values[-1]))
    if len(problems) > 1:
        raise UserError(f"{path}: the problems column differs between rows ({sorted(problems)}); one benchmark per file")
    if len(set(names)) != len(names):
        raise UserError(f"{path}: a checkpoint appears twice")
    return names, np.array(compute), ks, np.array(rows, dtype=float), problems.pop() if problems else 164


def forecast_scores(names: list[str], compute: np.ndarray, ks: list[int], scores: np.ndarray, problems: int,
                    target_compute: float, options, prior: ShockPrior) -> dict:
    """The ``pass_at_k`` list for a target from leaderboard scores of the checkpoints below it."""
    from pipeline.errors import UserError
    from pipeline.forecast.summaries import interval, verdict

    below = compute < target_compute
    if below.sum() < 2:
        raise UserError(f"need at least 2 checkpoints below the target to forecast; got {int(below.sum())}: one point "
                        "cannot tell a trend from the level")
    x = np.log(compute / target_compute)
    post = fit_scores(ScoreTable(x[below], ks, scores[below], problems), prior, options.sampler())
    draws = score_forecast_draws(post, x[below], ks, np.random.default_rng(options.seed))
    rng = np.random.default_rng([options.seed, 1])
    at_target = np.isclose(compute, target_compute, rtol=1e-9)
    out = []
    for j, k in enumerate(ks):
        d = draws[int(k)]
        measured = rng.binomial(problems, d) / problems
        block = {"k": int(k), "value": float(np.median(d)), "interval": list(interval(d, options.level)),
                 "interval_kind": "forecast", "level": options.level, "problems": int(problems),
                 "measurement_interval": list(interval(measured, options.level)),
                 "measurement_note": "the benchmark's problems as a binomial sample"}
        if at_target.any() and np.isfinite(scores[at_target][0, j]):
            block["actual"] = float(scores[at_target][0, j])
            block["verdict"] = verdict(block["actual"], block).as_dict()
        out.append(block)
    result = {"pass_at_k": out, "diagnostics": post["diagnostics"], "fit_checkpoints": int(below.sum()),
              "checkpoints": [n for n, b in zip(names, below) if b]}
    if below.sum() == 2:
        result["note"] = ("2 checkpoints below the target: the line through their shocks cannot be told from the trend, "
                          "so the interval rests on the shock prior (set from development families)")
    return result
