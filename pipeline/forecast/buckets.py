"""Difficulty buckets (GPT-4 report §3.2): all but the H hardest problems, split into B buckets by the
fit checkpoints' pooled pass rate; one fit and forecast per bucket on its qualifying problems."""
from __future__ import annotations

import numpy as np

from pipeline.errors import UserError
from pipeline.forecast.fit import actual_value, prediction_block, run_method

HUMANEVAL_PROBLEMS, HUMANEVAL_HARDEST = 164, 15   # the report left the 15 hardest of 164 out of its buckets


def hardest_count(n_problems: int, hardest_excluded: int | None) -> int:
    """H: as given, else 15 of HumanEval's 164 scaled to the problem count."""
    if hardest_excluded is not None:
        if hardest_excluded < 0:
            raise UserError(f"--hardest-excluded must be >= 0, got {hardest_excluded}")
        return min(hardest_excluded, n_problems)
    return int(round(n_problems * HUMANEVAL_HARDEST / HUMANEVAL_PROBLEMS))


def split_buckets(task_ids: list[str], pass_rate: np.ndarray, buckets: int,
                  hardest: int) -> tuple[list[list[str]], list[str]]:
    """(buckets easiest first, the H hardest); ties broken by task order, so the split is deterministic."""
    if buckets < 1:
        raise UserError(f"--buckets must be >= 1, got {buckets}")
    order = sorted(range(len(task_ids)), key=lambda i: (-pass_rate[i], i))
    kept, dropped = order[: len(order) - hardest], order[len(order) - hardest:]
    groups = [list(g) for g in np.array_split(np.array(kept, dtype=int), min(buckets, max(len(kept), 1)))]
    return [[task_ids[i] for i in g] for g in groups if len(g)], [task_ids[i] for i in dropped]


def bucket_forecasts(data, method: str, options) -> tuple[list[dict], dict]:
    """A forecast per bucket; a bucket that cannot be fitted carries {"error": message} instead."""
    models = data.restriction.models
    table = data.table.select(models)
    observed = table.n.sum(axis=0) > 0
    task_ids = [t for t, ok in zip(table.task_ids, observed) if ok]
    rate = table.passed.sum(axis=0)[observed] / table.n.sum(axis=0)[observed]
    groups, hardest = split_buckets(task_ids, rate, options.buckets, hardest_count(len(task_ids), options.hardest_excluded))
    qualifying = set(data.restriction.problems)
    rate_of = dict(zip(task_ids, rate))
    out = []
    for number, group in enumerate(groups, start=1):
        problems = [t for t in group if t in qualifying]
        bucket = {"bucket": number, "problems": problems, "members": group,
                  "pass_rate_range": [float(min(rate_of[t] for t in group)), float(max(rate_of[t] for t in group))],
                  "not_qualifying": [t for t in group if t not in qualifying]}
        try:
            fit = run_method(method, data.table, models, problems, data.target_compute, options, seed_offset=number)
        except UserError as exc:
            bucket["error"] = str(exc)
            bucket["prediction"] = None
            out.append(bucket)
            continue
        bucket.update({"alpha": fit.alpha, "k": fit.k, "prediction": prediction_block(fit, data, problems, options)})
        actual = actual_value(data, problems, method, fit, options)
        if actual is not None:
            bucket["actual"] = actual
        out.append(bucket)
    return out, {"count": len(hardest), "problems": hardest}
