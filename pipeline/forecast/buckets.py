"""Difficulty buckets (GPT-4 report §3.2): all but the H hardest problems, split into B buckets by the
fit checkpoints' pooled pass rate; one fit and forecast per bucket on its qualifying problems."""
from __future__ import annotations

import numpy as np

from pipeline.errors import UserError
from pipeline.forecast.fit import actual_value, prediction_block, restrict_fit, run_method

HUMANEVAL_PROBLEMS, HUMANEVAL_HARDEST = 164, 15   # the report left the 15 hardest of 164 out of its buckets


def hardest_count(n_problems: int, hardest_excluded: int | None) -> int:
    """H: as given, else 15 of HumanEval's 164 scaled to the problem count."""
    if hardest_excluded is not None:   # >= 0: FitOptions.check
        return min(hardest_excluded, n_problems)
    return int(round(n_problems * HUMANEVAL_HARDEST / HUMANEVAL_PROBLEMS))


def split_buckets(task_ids: list[str], pass_rate: np.ndarray, buckets: int,
                  hardest: int) -> tuple[list[list[str]], list[str]]:
    """(buckets easiest first, the H hardest); ties broken by task order, so the split is deterministic.
    ``buckets`` >= 1 (FitOptions.check)."""
    order = sorted(range(len(task_ids)), key=lambda i: (-pass_rate[i], i))
    kept, dropped = order[: len(order) - hardest], order[len(order) - hardest:]
    groups = [list(g) for g in np.array_split(np.array(kept, dtype=int), min(buckets, max(len(kept), 1)))]
    return [[task_ids[i] for i in g] for g in groups if len(g)], [task_ids[i] for i in dropped]


MIN_BUCKET_PROBLEMS = 5


def merge_small(groups: list[list[str]], qualifying: set[str], minimum: int = MIN_BUCKET_PROBLEMS) -> list[list[int]]:
    """Bucket numbers (0-based) grouped so every group with a qualifying problem has >= ``minimum`` of them.

    A group with 1..minimum-1 qualifying problems is merged with its neighbour that has fewer (but some)
    qualifying problems; groups with none stay alone (they are not forecastable, and say why).
    """
    merged = [[i] for i in range(len(groups))]
    size = lambda g: sum(t in qualifying for i in g for t in groups[i])   # noqa: E731
    while True:
        small = [j for j, g in enumerate(merged) if 0 < size(g) < minimum]
        if not small:
            return merged
        j = min(small, key=lambda j: (size(merged[j]), j))
        neighbours = [i for i in (j - 1, j + 1) if 0 <= i < len(merged) and size(merged[i]) > 0]
        if not neighbours:
            return merged
        other = min(neighbours, key=lambda i: (size(merged[i]), i))
        a, b = sorted((j, other))
        merged[a:b + 1] = [merged[a] + merged[b]]


def bucket_forecasts(data, method: str, options, fit=None) -> tuple[list[dict], dict]:
    """A forecast per bucket; a bucket that cannot be forecast carries {"error": reason} instead.

    With a draws-based fit (per-problem laws), every bucket is the same draws averaged over its problems,
    so the problem-weighted mean of the buckets (and the hardest group) is the overall forecast.
    """
    models = data.restriction.models
    table = data.table.select(models)
    observed = table.n.sum(axis=0) > 0
    task_ids = [t for t, ok in zip(table.task_ids, observed) if ok]
    rate = table.passed.sum(axis=0)[observed] / table.n.sum(axis=0)[observed]
    groups, hardest = split_buckets(task_ids, rate, options.buckets, hardest_count(len(task_ids), options.hardest_excluded))
    qualifying = set(data.restriction.problems)
    rate_of = dict(zip(task_ids, rate))
    out = []
    for number, members in enumerate(merge_small(groups, qualifying), start=1):
        group = [t for i in members for t in groups[i]]
        problems = [t for t in group if t in qualifying]
        bucket = {"bucket": number, "problems": problems, "members": group,
                  "pass_rate_range": [float(min(rate_of[t] for t in group)), float(max(rate_of[t] for t in group))],
                  "not_qualifying": [t for t in group if t not in qualifying]}
        if len(members) > 1:
            bucket["merged_from"] = [i + 1 for i in members]
        out.append(bucket | _forecast(data, method, options, fit, problems, number))
    hardest_block = {"count": len(hardest), "problems": hardest}
    hard_problems = [t for t in hardest if t in qualifying]
    if hard_problems and fit is not None and fit.log_p_draws is not None:
        hardest_block |= {"qualifying": hard_problems} | _forecast(data, method, options, fit, hard_problems, 0, minimum=1)
    return out, hardest_block


def _forecast(data, method, options, fit, problems, number, minimum: int = MIN_BUCKET_PROBLEMS) -> dict:
    if not problems:
        return {"error": "not forecastable: none of its problems is solved at least once by every fit checkpoint",
                "prediction": None}
    if len(problems) < minimum:
        return {"error": f"not forecastable: only {len(problems)} qualifying problems (fewer than "
                         f"{MIN_BUCKET_PROBLEMS}) and no neighbouring bucket to merge with", "prediction": None}
    try:
        if fit is not None and fit.log_p_draws is not None:
            position = {t: i for i, t in enumerate(data.restriction.problems)}
            part = restrict_fit(fit, [position[t] for t in problems], options.level)
        else:
            part = run_method(method, data.table, data.restriction.models, problems, data.target_compute, options,
                              seed_offset=number)
    except UserError as exc:
        return {"error": str(exc), "prediction": None}
    out = {"alpha": part.alpha, "k": part.k, "prediction": prediction_block(part, data, problems, options),
           "curve": [{"normalized_compute": float(np.exp(x)), "value": float(v), "interval": [float(lo), float(hi)]}
                     for x, v, lo, hi in zip(part.curve_x, part.curve, part.curve_lo, part.curve_hi)]}
    actual = actual_value(data, problems, method, part, options)
    if actual is not None:
        out["actual"] = actual
    return out
