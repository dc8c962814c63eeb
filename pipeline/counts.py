"""Count stage: verdicts of every checkpoint -> pass_counts.csv (checkpoint,compute,task_id,n,passed).

Samples whose verdict is ``sandbox error`` are missing data, not failures: they are left out of n.
"""
from __future__ import annotations

import sys
from pathlib import Path

from pipeline.errors import UserError
from pipeline.execute import SANDBOX_ERROR, latest_verdicts
from pipeline.records import PassCount, write_pass_counts


def count_verdicts(verdicts: list[dict], checkpoint: str, compute: float,
                   task_ids: list[str] | None = None) -> list[PassCount]:
    """Per-problem pass counts of one checkpoint; task_ids lists problems to include even with n = 0."""
    per_task: dict[str, list[int]] = {t: [0, 0] for t in (task_ids or [])}
    for row in verdicts:
        if row.get("status") == SANDBOX_ERROR:
            continue
        n_passed = per_task.setdefault(row["task_id"], [0, 0])
        n_passed[0] += 1
        n_passed[1] += bool(row.get("passed"))
    return [PassCount(checkpoint, compute, task, n, p) for task, (n, p) in sorted(per_task.items())]


def count_run(run_dir: Path, computes: dict[str, float]) -> list[PassCount]:
    """Pass counts for every checkpoint in computes that has a verdicts file in run_dir."""
    counts: list[PassCount] = []
    for name, compute in computes.items():
        path = Path(run_dir) / "verdicts" / f"{name}.jsonl"
        if path.exists():
            counts.extend(count_verdicts(latest_verdicts(path), name, compute))
    return counts


def register(subparsers) -> None:
    parser = subparsers.add_parser("count", help="turn a run directory's verdicts into pass_counts.csv")
    parser.add_argument("run_dir", type=Path, help="run directory (reads manifest.json and verdicts/)")
    parser.set_defaults(func=_main)


def _main(args) -> int:
    from pipeline.manifest import read_manifest

    manifest = read_manifest(args.run_dir)
    computes = {c["name"]: c["compute"] for c in manifest["checkpoints"]}
    counts = count_run(args.run_dir, computes)
    if not counts:
        raise UserError(f"{args.run_dir / 'verdicts'}: no verdicts yet; run `capforecast execute` first")
    write_pass_counts(args.run_dir / "pass_counts.csv", counts)
    print(f"{args.run_dir / 'pass_counts.csv'}: {len(counts)} rows", file=sys.stderr)
    return 0
