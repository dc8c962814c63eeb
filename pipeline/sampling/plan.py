"""``capforecast plan`` (next round of adaptive sampling) and ``capforecast passuntil`` (its estimates).

Both work on a run directory (verdicts in sample_index order, manifest for computes and target) or on
a bare CSV: ``plan`` needs only pass counts; ``passuntil`` needs the order of draws, so its CSV must
carry ``r`` and ``draws`` columns (as the passuntil.csv it writes does, whose n and passed count the
sequential phase only: draws from ``start`` to the stop, and the successes among them).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from pipeline.arguments import COMMAND_LINE, layered
from pipeline.config import MIN_FIT_CHECKPOINTS
from pipeline.errors import UserError
from pipeline.records import (PassCount, atomic_write_json, atomic_write_text, read_csv_rows, read_json,
                              read_pass_counts)
from pipeline.rundir import RunDir
from pipeline.sampling.adaptive import CellDesign, Design, forecast_from_means, plan_next_round
from pipeline.sampling.passuntil import (COMPLETE, CellEstimate, estimate_cell, prefix_counts,
                                         read_ordered_outcomes)

DESIGN_OPTIONS = ("r", "budget", "pilot", "round_size", "samples_per_cell", "r_max", "prior", "target",
                  "target_compute")


def load_design(path: Path) -> Design:
    if not Path(path).is_file():
        raise UserError(f"{path}: design/plan file not found")
    obj = read_json(path)
    if not isinstance(obj, dict) or "design" not in obj:
        raise UserError(f"{path}: field 'design' is missing; pass a plan.json written by `capforecast plan`")
    return Design.from_json(obj["design"], str(path))


def run_counts(run_dir: Path) -> tuple[list[PassCount], object, dict]:
    """(counts over each cell's contiguous sample_index prefix, manifest, ordered outcomes) of a run."""
    run = RunDir(run_dir)
    manifest = run.read_manifest()
    computes = manifest.computes()
    outcomes = read_ordered_outcomes(run.verdicts_dir) if run.verdict_files() else {}
    unknown = sorted({c for c, _ in outcomes} - set(computes))
    if unknown:
        raise UserError(f"{run.verdicts_dir}: checkpoint(s) {', '.join(unknown)} are not in {run.manifest}")
    tasks = _task_ids(manifest) or sorted({t for _, t in outcomes})
    return prefix_counts(outcomes, computes, tasks), manifest, outcomes


def _task_ids(manifest) -> list[str]:
    from pipeline.problems import load_problems

    try:
        return sorted(load_problems(manifest.problems.path, manifest.problems.limit))  # as `run --limit`
    except UserError:
        return []


def design_from_args(args, recorded: Design | None, manifest) -> Design:
    """The design: options given on the command line over the recorded design (or, for a new design, over the
    run's target from its manifest) over the defaults; a recorded allocation may not change."""
    given = {k: getattr(args, k, None) for k in DESIGN_OPTIONS}
    if recorded is not None:
        values, source = layered(given, {k: getattr(recorded, k) for k in DESIGN_OPTIONS}, "the recorded design")
        changed = [k for k, s in source.items() if s == COMMAND_LINE and getattr(recorded, k) != values[k]]
        if changed and recorded.cells:
            raise UserError(f"the design is already allocated; changing {', '.join(changed)} would bias the "
                            f"estimators. Keep the recorded design or write a new plan with another --out")
        for key, value in values.items():
            setattr(recorded, key, value)
        Design.__post_init__(recorded)
        return recorded
    stored = {"target": manifest.target.name, "target_compute": manifest.target.compute} if manifest else {}
    return Design(**layered(given, stored)[0])


def handle_plan(args) -> int:
    if (args.run_dir is None) == (args.pass_counts is None):
        raise UserError("give a run directory or --pass-counts FILE.csv (one of them)")
    manifest = None
    if args.run_dir is not None:
        counts, manifest, _ = run_counts(args.run_dir)
        out = args.out or RunDir(args.run_dir).plan
    else:
        counts = read_pass_counts(args.pass_counts)
        if args.out is None:
            raise UserError("--out PLAN.json is required with --pass-counts")
        out = args.out
    source = args.design or (out if Path(out).exists() else None)
    recorded = load_design(source) if source else None
    design = design_from_args(args, recorded, manifest)
    if design.target_compute is None and design.target is not None:
        design.target_compute = next((c.compute for c in counts if c.checkpoint == design.target), None)
    if not args.include_target:  # the target is sampled only after its forecast is registered
        counts = [c for c in counts if c.checkpoint != design.target]
    plan = plan_next_round(counts, design)
    atomic_write_json(out, plan.to_json())
    for note in plan.notes:
        print(note, file=sys.stderr)
    summary = plan.to_json()
    print(f"{out}: {len(plan.requests)} request(s), {summary['new_samples']} new sample(s)"
          + (" -- every cell has met its stopping rule" if plan.done else ""), file=sys.stderr)
    return 0


def estimate_run(outcomes: dict, design: Design) -> list[CellEstimate]:
    """Each cell's estimate under its recorded rule (cells without one: r = design.r from index 0)."""
    out = []
    for (ckpt, task), seq in sorted(outcomes.items()):
        rule = design.cells.get((ckpt, task), CellDesign(0, 0, design.r, design.budget))
        out.append(estimate_cell(ckpt, task, seq, rule.r, rule.budget, rule.start))
    return out


def summarize(cells: list[CellEstimate], computes: dict[str, float], target: str | None,
              target_compute: float | None, level: float = 0.9, seed: int = 0) -> dict:
    """Per-checkpoint mean log p (unbiased when all its cells are complete) and the aggregate forecast."""
    per: dict[str, list[CellEstimate]] = {}
    for cell in cells:
        per.setdefault(cell.checkpoint, []).append(cell)
    points = []
    for name in sorted(per, key=lambda n: computes[n]):
        group = per[name]
        statuses = {s: sum(c.status == s for c in group) for s in ("complete", "truncated", "pending")}
        point = {"checkpoint": name, "compute": computes[name], "cells": len(group), **statuses}
        if statuses["complete"] == len(group):
            point["mean_log_pass_rate"] = float(np.mean([c.log_p for c in group]))
            point["standard_error"] = float(np.sqrt(sum(c.variance for c in group)) / len(group))
        points.append(point)
    out: dict = {"points": points, "target": {"name": target, "compute": target_compute}}
    fit = [p for p in points if p["checkpoint"] != target and "mean_log_pass_rate" in p]
    if any(p["mean_log_pass_rate"] >= 0 for p in fit):
        out["prediction"] = None
        out["why_no_prediction"] = "a fit checkpoint's mean log pass rate estimate is 0 (every cell passed at once)"
    elif target_compute is not None and len(fit) >= MIN_FIT_CHECKPOINTS:
        compute = np.array([p["compute"] for p in fit])
        mean = np.array([p["mean_log_pass_rate"] for p in fit])
        se = np.array([p["standard_error"] for p in fit])
        draws = np.random.default_rng(seed).normal(mean, se, size=(2000, len(fit)))
        reps = [forecast_from_means(compute, d, target_compute) for d in draws if np.all(d < 0)]
        tail = 50 * (1 - level)
        slope, intercept = np.polyfit(np.log(compute / target_compute), np.log(-mean), 1)
        out["alpha"], out["k"] = float(np.exp(intercept)), float(-slope)
        out["problems"] = sorted({c.task_id for c in cells if c.checkpoint in {p["checkpoint"] for p in fit}})
        out["prediction"] = {"value": forecast_from_means(compute, mean, target_compute),
                             "interval": [float(np.percentile(reps, tail)), float(np.percentile(reps, 100 - tail))],
                             "level": level, "method": "aggregate fit of PassUntil means; interval from their SEs"}
        actual = next((p for p in points if p["checkpoint"] == target and "mean_log_pass_rate" in p), None)
        if actual:
            out["actual"] = {"value": actual["mean_log_pass_rate"], "standard_error": actual["standard_error"]}
    else:
        out["prediction"] = None
        out["why_no_prediction"] = (f"need the target's compute and >= {MIN_FIT_CHECKPOINTS} fit checkpoints whose "
                                    "cells are all complete")
    return out


def cells_from_csv(path: Path) -> tuple[list[CellEstimate], dict[str, float]]:
    """Cells from a CSV with r and draws columns (N counted from the cell's start)."""
    counts = {(c.checkpoint, c.task_id): c for c in read_pass_counts(path)}
    header, rows = read_csv_rows(path)
    missing = [c for c in ("r", "draws") if c not in header]
    if missing:
        raise UserError(f"{path}, line 1: column(s) {', '.join(missing)} missing. PassUntil estimates need the "
                        f"order of draws: run `capforecast passuntil RUN_DIR` (verdicts carry sample_index) "
                        f"or give the passuntil.csv it writes")
    cells = []
    for number, row in rows:
        try:
            r, draws, start = int(row["r"]), int(row["draws"]), int(row.get("start") or 0)
        except ValueError:
            raise UserError(f"{path}, line {number}: fields 'r', 'draws', 'start' should be integers") from None
        status = row.get("status") or COMPLETE
        hits = min(int(row["passed"]), r - 1)
        seq = [False] * (draws - r) + [True] * r if status == COMPLETE else [True] * hits + [False] * (draws - hits)
        budget = int(row.get("budget") or max(draws, r))
        cells.append(estimate_cell(row["checkpoint"], row["task_id"], seq, r, max(budget, r)))
    return cells, {c: pc.compute for (c, _), pc in counts.items()}


def handle_passuntil(args) -> int:
    if (args.run_dir is None) == (args.pass_counts is None):
        raise UserError("give a run directory or --pass-counts FILE.csv (one of them)")
    if args.run_dir is not None:
        counts, manifest, outcomes = run_counts(args.run_dir)
        plan_path = args.design or RunDir(args.run_dir).plan
        design = load_design(plan_path) if Path(plan_path).exists() else Design(pilot=0, r=args.r or 1)
        cells = estimate_run(outcomes, design)
        computes = {c.checkpoint: c.compute for c in counts}
        summary = summarize(cells, computes, manifest.target.name, manifest.target.compute, seed=0)
        out_dir = args.out or args.run_dir
    else:
        cells, computes = cells_from_csv(args.pass_counts)
        summary = summarize(cells, computes, args.target, args.target_compute)
        out_dir = args.out or Path(args.pass_counts).parent
    write_estimates(out_dir, cells, computes, summary)
    pred = summary.get("prediction")
    if pred is None:
        print(f"no PassUntil prediction: {summary.get('why_no_prediction') or 'no estimate could be made'}; "
              f"wrote the per-cell estimates to {RunDir(out_dir).passuntil_csv}", file=sys.stderr)
    else:
        print(json.dumps(pred, indent=1), file=sys.stderr)
    return 0


def write_estimates(out_dir: Path, cells: list[CellEstimate], computes: dict[str, float], summary: dict) -> None:
    """passuntil.csv (one row per cell; n and passed count the sequential phase) and passuntil.json."""
    rows = ["checkpoint,compute,task_id,n,passed,r,start,budget,draws,status,log_p,variance,bias_bound"]
    for c in cells:
        rows.append(",".join(str(v) for v in (c.checkpoint, computes[c.checkpoint], c.task_id, c.draws,
                                              c.successes, c.r, c.start, c.budget, c.draws, c.status,
                                              _num(c.log_p), _num(c.variance), _num(c.bias_bound))))
    atomic_write_text(RunDir(out_dir).passuntil_csv, "\n".join(rows) + "\n")
    atomic_write_json(RunDir(out_dir).passuntil_json, summary)


def _num(value) -> str:
    return "" if value is None else repr(float(value))


def register(subparsers) -> None:
    plan = subparsers.add_parser("plan", help="plan the next round of adaptive (PassUntil) sampling",
                                 description=__doc__)
    plan.add_argument("run_dir", nargs="?", type=Path, help="run directory (reads manifest.json, verdicts/)")
    plan.add_argument("--pass-counts", type=Path, help="a bare pass-counts CSV instead of a run directory")
    plan.add_argument("--out", type=Path, help="plan JSON to write (default RUN_DIR/plan.json)")
    plan.add_argument("--design", type=Path, help="plan JSON whose recorded design to follow (default: --out)")
    for name, kind, text in [("r", int, "successes per cell without a pilot (default 1)"),
                             ("budget", int, "most sequential draws per cell (default 2000)"),
                             ("pilot", int, "pilot samples per cell before allocation (default 10; 0 = plain)"),
                             ("round_size", int, "most new samples per cell per round (default 200)"),
                             ("samples_per_cell", float, "allocation budget per fit cell (default 40)"),
                             ("r_max", int, "largest r the allocation may give (default 200)"),
                             ("prior", str, "planning pass rates: logit-normal (pooled per checkpoint, default) "
                                            "or jeffreys (each cell alone)"),
                             ("target", str, "the target checkpoint's name (run dirs: from the manifest)"),
                             ("target_compute", float, "the target's training FLOPs")]:
        plan.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None, help=text)
    plan.add_argument("--include-target", action="store_true",
                      help="also plan the target's samples (after `capforecast forecast` registered its forecast)")
    plan.set_defaults(func=handle_plan)
    est = subparsers.add_parser("passuntil", help="unbiased log pass rates from sequential (PassUntil) sampling")
    est.add_argument("run_dir", nargs="?", type=Path, help="run directory (verdicts in sample_index order)")
    est.add_argument("--pass-counts", type=Path, help="CSV with r and draws columns (a passuntil.csv)")
    est.add_argument("--design", type=Path, help="plan JSON with the recorded design (default RUN_DIR/plan.json)")
    est.add_argument("--r", type=int, default=None, help="successes per cell when no design is recorded")
    est.add_argument("--target", default=None, help="target checkpoint name (CSV input)")
    est.add_argument("--target-compute", type=float, default=None, help="target FLOPs (CSV input)")
    est.add_argument("--out", type=Path, help="directory for passuntil.csv/.json (default: the input's)")
    est.set_defaults(func=handle_passuntil)
