"""Adaptive sampling inside ``capforecast run``: pilot, one frozen allocation, then rounds until every cell stops.

``sample_in_rounds`` drives the lead's ``sample_and_judge`` (generate the requested sample indices of one
checkpoint, then execute them) round by round. The design lives in ``RUN_DIR/plan.json``; once its cells
are allocated it is never re-allocated (a resumed run reuses it), so each cell's stopping rule depends only
on its recorded (start, r, budget) and the PassUntil estimates stay unbiased. The target is run by a
separate call after its forecast is registered; its cells get a rule fixed before any of its draws
(r = design.r from index 0).

What to fit afterwards (``passuntil_estimates``): each cell's PassUntil estimate of log p. Plain pass counts
over all samples remain a valid *likelihood* (the stopping rule depends only on observed outcomes, so
the binomial likelihood is unchanged: the per-problem fit may use them), but log(c/n) of such counts is
biased, so the report's aggregate fit must use the PassUntil means.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from pipeline.sampling.adaptive import Design, plan_next_round
from pipeline.errors import UserError
from pipeline.sampling.passuntil import COMPLETE, read_ordered_outcomes
from pipeline.records import PassCount, atomic_write_json

PLAN_FILE = "plan.json"
SETTINGS = ("pilot", "r", "budget", "round_size", "samples_per_cell")


def design_for(run_dir: Path, family) -> Design:
    """The run's recorded design (plan.json), or a new one from ``family.sampling.adaptive``."""
    from pipeline.sampling.plan import load_design

    settings = family.sampling.adaptive
    if settings is None:
        raise UserError(f"family {family.name}: sampling.adaptive is not set; rounds need its settings")
    wanted = {name: getattr(settings, name) for name in SETTINGS}
    path = Path(run_dir) / PLAN_FILE
    if not path.exists():
        return Design(**wanted, target=family.target_name, target_compute=family.target_compute)
    design = load_design(path)
    changed = [k for k, v in wanted.items() if getattr(design, k) != v]
    if changed and design.cells:
        raise UserError(f"{path}: the recorded design was allocated with other sampling.adaptive settings "
                        f"({', '.join(f'{k}: {getattr(design, k)} there, {wanted[k]} now' for k in changed)}); "
                        f"changing them now would bias the estimates. Restore them or use a new --out")
    for key, value in wanted.items():
        setattr(design, key, value)
    return design


def cell_counts(run_dir: Path, checkpoints: list, task_ids: list[str]) -> list[PassCount]:
    """Counts over each cell's contiguous sample_index prefix of judged samples (what the design reads)."""
    verdicts = Path(run_dir) / "verdicts"
    outcomes = read_ordered_outcomes(verdicts) if any(verdicts.glob("*.jsonl")) else {}
    out = []
    for ckpt in checkpoints:
        for task in task_ids:
            seq = outcomes.get((ckpt.name, task), [])
            out.append(PassCount(ckpt.name, float(ckpt.compute), task, len(seq), int(sum(seq))))
    return out


def sample_in_rounds(run_dir: Path, family, checkpoints: list, problems: dict, manifest: dict,
                     sample_and_judge: Callable) -> dict:
    """Pilot, allocate once, then sample in rounds until every cell met its rule or max_rounds; a summary."""
    run_dir = Path(run_dir)
    design = design_for(run_dir, family)
    max_rounds = family.sampling.adaptive.max_rounds
    tasks = sorted(problems)
    names = [c.name for c in checkpoints]
    summary = {"checkpoints": names, "rounds": 0, "samples": 0, "done": False}
    judged = None
    for _ in range(max_rounds + 1):
        counts = cell_counts(run_dir, checkpoints, tasks)
        if judged is not None and sum(c.n for c in counts) <= judged:
            raise UserError(f"{run_dir / 'verdicts'}: the last round added no judged samples in sample_index "
                            f"order (a missing index or sandbox error stops a cell's sequence); rerun "
                            f"`capforecast run --out {run_dir}` after fixing the sandbox")
        judged = sum(c.n for c in counts)
        plan = plan_next_round(counts, design)
        atomic_write_json(run_dir / PLAN_FILE, plan.to_json())   # the design is recorded before it is used
        for note in plan.notes:
            _log(f"plan: {note}")
        if plan.done:
            summary["done"] = True
            break
        if summary["rounds"] == max_rounds:
            break
        wanted: dict[str, dict[str, int]] = {}
        for req in plan.requests:
            wanted.setdefault(req["checkpoint"], {})[req["task_id"]] = req["n_total"]
        new = plan.to_json()["new_samples"]
        _log(f"round {summary['rounds'] + 1}: {new} new sample(s) over {len(plan.requests)} cell(s)")
        for ckpt in checkpoints:
            if ckpt.name in wanted:
                sample_and_judge(run_dir, family, ckpt, problems, manifest, requests=wanted[ckpt.name])
        summary["rounds"] += 1
        summary["samples"] += new
    if not summary["done"]:
        summary["note"] = (f"stopped after max_rounds = {max_rounds} with cells still sampling; rerun "
                           f"`capforecast run --out {run_dir}` to continue (the design is kept) or raise max_rounds")
        _log(summary["note"])
    if (run_dir / "verdicts").is_dir() and any((run_dir / "verdicts").glob("*.jsonl")):
        estimates = passuntil_estimates(run_dir, manifest)
        summary["cells"], summary["passuntil_prediction"] = estimates["cells"], estimates["prediction"]
    manifest.setdefault("adaptive", {})["+".join(names)] = summary
    atomic_write_json(run_dir / "manifest.json", manifest)
    return summary


def passuntil_estimates(run_dir: Path, manifest: dict | None = None) -> dict:
    """PassUntil estimates under the recorded design: writes passuntil.csv/.json, returns the summary.

    The summary's ``points`` give each checkpoint's unbiased mean log p (when all its cells are
    complete) and ``prediction`` the report's aggregate fit on them, with an interval from their SEs.
    """
    from pipeline.sampling.plan import estimate_run, load_design, summarize, write_estimates
    from pipeline.manifest import read_manifest

    run_dir = Path(run_dir)
    manifest = manifest or read_manifest(run_dir)
    path = run_dir / PLAN_FILE
    if not path.exists():
        raise UserError(f"{path}: not found; PassUntil estimates need the recorded design of adaptive rounds")
    design = load_design(path)
    outcomes = read_ordered_outcomes(run_dir / "verdicts")
    cells = estimate_run(outcomes, design)
    computes = {c["name"]: float(c["compute"]) for c in manifest["checkpoints"]}
    target = manifest.get("target", {})
    result = summarize(cells, computes, target.get("name"), target.get("compute"))
    result["cells"] = {s: sum(c.status == s for c in cells) for s in (COMPLETE, "truncated", "pending")}
    write_estimates(run_dir, cells, computes, result)
    return result


def _log(message: str) -> None:
    print(f"[capforecast rounds] {message}", file=sys.stderr, flush=True)

