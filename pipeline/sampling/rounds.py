"""Adaptive rounds inside ``capforecast run``: the design, each round's plan, and the PassUntil estimates.

``pipeline.run`` drives the rounds (pilot, one frozen allocation, then rounds until every cell stops): before
each round it asks ``next_round`` what to sample; this module never samples or executes anything itself.
The design lives in ``RUN_DIR/plan.json``; once its cells are allocated it is never re-allocated (a resumed
run reuses it), so each cell's stopping rule depends only on its recorded (start, r, budget) and the
PassUntil estimates stay unbiased. The target is run by a separate call after its forecast is registered;
its cells get a rule fixed before any of its draws (r = design.r from index 0).

What to fit afterwards (``passuntil_estimates``): each cell's PassUntil estimate of log p. Plain pass counts
over all samples remain a valid *likelihood* (the stopping rule depends only on observed outcomes, so
the binomial likelihood is unchanged: the per-problem fit may use them), but log(c/n) of such counts is
biased, so the report's aggregate fit must use the PassUntil means.
"""
from __future__ import annotations

import sys

from pipeline.errors import UserError
from pipeline.records import PassCount, atomic_write_json
from pipeline.rundir import RunDir
from pipeline.sampling.adaptive import Design, Plan, plan_next_round
from pipeline.sampling.passuntil import COMPLETE, prefix_counts, read_ordered_outcomes

SETTINGS = ("pilot", "r", "budget", "round_size", "samples_per_cell")


def design_for(run: RunDir, family) -> Design:
    """The run's recorded design (plan.json), or a new one from ``family.sampling.adaptive``."""
    from pipeline.sampling.plan import load_design

    settings = family.sampling.adaptive
    if settings is None:
        raise UserError(f"family {family.name}: sampling.adaptive is not set; rounds need its settings")
    wanted = {name: getattr(settings, name) for name in SETTINGS}
    if not run.plan.exists():
        return Design(**wanted, target=family.target_name, target_compute=family.target_compute)
    design = load_design(run.plan)
    changed = [k for k, v in wanted.items() if getattr(design, k) != v]
    if changed and design.cells:
        raise UserError(f"{run.plan}: the recorded design was allocated with other sampling.adaptive settings "
                        f"({', '.join(f'{k}: {getattr(design, k)} there, {wanted[k]} now' for k in changed)}); "
                        f"changing them now would bias the estimates. Restore them or use a new --out")
    for key, value in wanted.items():
        setattr(design, key, value)
    return design


def judged_counts(run: RunDir, checkpoints: list, task_ids: list[str]) -> list[PassCount]:
    """Counts over each cell's contiguous sample_index prefix of the run's verdicts so far (none before any
    verdict exists)."""
    outcomes = read_ordered_outcomes(run.verdicts_dir) if run.verdict_files() else {}
    return prefix_counts(outcomes, {c.name: c.compute for c in checkpoints}, task_ids)


def next_round(run: RunDir, counts: list[PassCount], design: Design) -> Plan:
    """The plan for the next round, recorded in plan.json before it is used."""
    plan = plan_next_round(counts, design)
    atomic_write_json(run.plan, plan.to_json())
    for note in plan.notes:
        log(f"plan: {note}")
    return plan


def requests_by_checkpoint(plan: Plan) -> dict[str, dict[str, int]]:
    """{checkpoint: {task_id: samples wanted in total}} of a round's plan."""
    wanted: dict[str, dict[str, int]] = {}
    for req in plan.requests:
        wanted.setdefault(req["checkpoint"], {})[req["task_id"]] = req["n_total"]
    return wanted


def no_progress(run: RunDir) -> UserError:
    return UserError(f"{run.verdicts_dir}: the last round added no judged samples in sample_index order (a missing "
                     f"index or sandbox error stops a cell's sequence); rerun `capforecast run --out {run.path}` "
                     f"after fixing the sandbox")


def passuntil_estimates(run: RunDir, manifest=None) -> dict:
    """PassUntil estimates under the recorded design: writes passuntil.csv/.json, returns the summary.

    The summary's ``points`` give each checkpoint's unbiased mean log p (when all its cells are
    complete) and ``prediction`` the report's aggregate fit on them, with an interval from their SEs.
    """
    from pipeline.sampling.plan import estimate_run, load_design, summarize, write_estimates

    manifest = manifest or run.read_manifest()
    if not run.plan.exists():
        raise UserError(f"{run.plan}: not found; PassUntil estimates need the recorded design of adaptive rounds")
    design = load_design(run.plan)
    cells = estimate_run(read_ordered_outcomes(run.verdicts_dir), design)
    computes = manifest.computes()
    result = summarize(cells, computes, manifest.target.name, manifest.target.compute)
    result["cells"] = {s: sum(c.status == s for c in cells) for s in (COMPLETE, "truncated", "pending")}
    write_estimates(run.path, cells, computes, result)
    return result


def log(message: str) -> None:
    print(f"[capforecast rounds] {message}", file=sys.stderr, flush=True)
