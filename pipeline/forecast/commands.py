"""The ``fit`` and ``backtest`` commands: their shared arguments, where the pass counts come from, and the
settings each fit uses (the command line over the run directory's manifest over the defaults).

The forecast itself is ``pipeline.forecast.capability``; the backtest is ``pipeline.forecast.backtest``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.arguments import (add_json_option, describe_sources, fraction, level, one_run_dir, positive_int,
                                print_json)
from pipeline.errors import EXIT_NO_RESULT, UserError
from pipeline.rundir import RunDir


def add_fit_arguments(parser: argparse.ArgumentParser, methods: bool = False) -> None:
    """Options shared by fit and backtest (backtest takes a comma-separated list of methods, or all).

    Every default is None: on a run directory the value stored in its manifest.json (the family's ``fit:``
    section) applies, elsewhere the FitOptions default; an option given here overrides either.
    """
    stored = " (default: the run directory's setting, else %s)"
    if methods:
        parser.add_argument("--method", default=None, help="comma-separated methods to score, or all "
                            "(default: aggregate and the default method)")
    else:
        parser.add_argument("--method", default=None, help="default (stacked), aggregate (the report's), "
                            "per-problem (power laws) or sigmoid" + stored % "default")
    parser.add_argument("--level", type=level, default=None, help="interval level" + stored % "0.9")
    parser.add_argument("--buckets", type=positive_int, default=None, help="difficulty buckets" + stored % "6")
    parser.add_argument("--hardest-excluded", type=int, default=None,
                        help="H hardest problems left out of the buckets (default 15/164 of the problems)")
    parser.add_argument("--bootstrap", type=positive_int, default=None,
                        help="bootstrap replicates / posterior draws" + stored % "1000")
    parser.add_argument("--seed", type=int, default=None, help="random seed of the bootstrap (default 0)")
    parser.add_argument("--max-fit-compute-fraction", type=fraction, default=None,
                        help="fit only checkpoints with compute <= FRACTION x target compute, 0 < FRACTION <= 1"
                             + stored % "no limit")


def add_counts_source_arguments(parser: argparse.ArgumentParser, writes: str) -> None:
    """RUN_DIR / --run / --pass-counts, read back by ``counts_source``."""
    parser.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="run directory, as for the other commands "
                        "(same as --run)")
    parser.add_argument("--pass-counts", help=f"CSV with {','.join(_columns())} (raw FLOPs)")
    parser.add_argument("--run", help=f"run directory (reads {RunDir.PASS_COUNTS}, writes {writes})")


def _columns() -> list[str]:
    from pipeline.records import PASS_COUNT_COLUMNS

    return PASS_COUNT_COLUMNS


def counts_source(args) -> tuple[Path, RunDir | None]:
    """(pass-counts CSV, run directory or None) from --pass-counts / RUN_DIR / --run."""
    given = one_run_dir(getattr(args, "run_dir", None), args.run, "--run")
    if given:
        run = RunDir(given)
        if not run.path.is_dir():
            raise UserError(f"{run.path}: run directory not found")
        return run.pass_counts, run
    if not args.pass_counts:
        raise UserError("give a run directory (RUN_DIR or --run DIR) or --pass-counts FILE.csv")
    return Path(args.pass_counts), None


def run_settings(run: RunDir | None):
    """(the run's family config, its target) from manifest.json; (None, None) without a manifest (a bare
    directory holding pass counts)."""
    if run is None or not run.has_manifest():
        return None, None
    manifest = run.read_manifest()
    return manifest.run_family(), manifest.target


def fit_options(args, run: RunDir | None):
    """FitOptions and the source of each setting, for the fit or backtest command on ``run``."""
    from pipeline.forecast.fit import FitOptions

    given = {name: getattr(args, name, None) for name in FitOptions.ON_COMMAND_LINE}
    if given["method"] is not None and ("," in given["method"] or given["method"] == "all"):
        given["method"] = None   # backtest's list of methods; its fits use the default
    family, target = run_settings(run)
    options, source = FitOptions.resolve(given, family)
    return options, source, target


def writable_parent(out: Path, option: str) -> None:
    """Refuse before fitting when the output's folder exists but cannot be written."""
    from pipeline.records import check_writable

    parent = Path(out).parent
    if parent.is_dir():
        check_writable(parent, option)


def register(subparsers) -> None:
    parser = subparsers.add_parser("fit", help="fit the capability law and forecast the target",
                                   description="Capability forecast: -E_P[log pass_rate(C)] = alpha * C^(-k), "
                                               "per bucket and overall.")
    add_counts_source_arguments(parser, RunDir.FORECAST)
    parser.add_argument("--out", help=f"forecast JSON to write (default: RUN/{RunDir.FORECAST})")
    parser.add_argument("--target", help="target checkpoint name (default: the largest compute in the CSV)")
    parser.add_argument("--target-compute", type=float, help="target training FLOPs (raw)")
    add_fit_arguments(parser)
    add_json_option(parser, "the forecast (the fields of forecast.json) and where it was written")
    parser.set_defaults(func=handle_fit)
    parser = subparsers.add_parser("backtest", help="hold out the largest checkpoints in turn and score forecasts",
                                   description="Backtest: hold out the largest m checkpoints in turn, forecast each "
                                               "from the rest, and score.")
    add_counts_source_arguments(parser, RunDir.BACKTEST)
    parser.add_argument("--out", help=f"backtest JSON to write (default: RUN/{RunDir.BACKTEST}; none for a bare CSV)")
    parser.add_argument("--max-holdout", type=int, default=None,
                        help="hold out at most this many of the largest checkpoints (default: all but 3)")
    add_fit_arguments(parser, methods=True)
    add_json_option(parser, "the backtest (the fields of backtest.json) and where it was written")
    parser.set_defaults(func=handle_backtest)


def handle_fit(args) -> int:
    from pipeline.forecast.capability import forecast_from_counts, summary_text
    from pipeline.records import read_pass_counts
    from pipeline.rundir.results import write_forecast

    csv_path, run = counts_source(args)
    out = Path(args.out) if args.out else (run.forecast if run else None)
    if out is None:
        raise UserError(f"give --out FILE.json (or a run directory, to write RUN_DIR/{RunDir.FORECAST})")
    writable_parent(out, "--out" if args.out else "RUN_DIR")
    options, source, target = fit_options(args, run)
    target_name = args.target or (target.name if target and args.target_compute is None else None)
    target_compute = args.target_compute or (target.compute if target and args.target is None else None)
    result = forecast_from_counts(read_pass_counts(csv_path), target_name, target_compute, options)
    result["settings_source"] = source
    write_forecast(out, result)
    text = sys.stderr if args.json else sys.stdout
    print(summary_text(result), file=text)
    print(describe_sources(options, source), file=text)
    print(f"wrote {out}", file=text)
    if args.json:
        print_json({"forecast": result, "out": str(out)})
    return 0


def handle_backtest(args: argparse.Namespace) -> int:
    from pipeline.forecast.backtest import backtest, format_table
    from pipeline.records import read_pass_counts
    from pipeline.rundir.results import write_backtest

    csv_path, run = counts_source(args)
    methods = (None if args.method in ("default", None) else ["all"] if args.method == "all"
               else [m.strip() for m in args.method.split(",") if m.strip()])
    out = Path(args.out) if args.out else (run.backtest if run else None)
    if out is not None:
        writable_parent(out, "--out" if args.out else "RUN_DIR")
    options, source, _ = fit_options(args, run)
    result = backtest(read_pass_counts(csv_path), options, methods, args.max_holdout)
    result["settings_source"] = source
    text = sys.stderr if args.json else sys.stdout
    print(format_table(result), file=text)
    print(describe_sources(options, source), file=text)
    if out is not None:
        write_backtest(out, result)
        print(f"wrote {out}", file=text)
    if args.json:
        print_json({"backtest": result, "out": str(out) if out is not None else None})
    if not any(s["scored"] for s in result["summary"].values()):
        reasons = dict.fromkeys(r["error"] for r in result["rows"] if r.get("error"))
        print(f"capforecast backtest: no forecast could be scored ({len(result['rows'])} tried): "
              f"{'; '.join(list(reasons)[:3])}", file=sys.stderr)
        return EXIT_NO_RESULT
    return 0
