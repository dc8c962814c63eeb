"""The report stage: ``capforecast report RUN_DIR`` writes report.md, report.html and figures/ from stored results.

It reads what earlier stages wrote, recomputes nothing expensive, and writes only report.md, report.html and
figures/*.png; absent inputs (no forecast yet, no loss, no backtest) are stated plainly in the report.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.rundir import RunDir

RUN_FILES = (RunDir.MANIFEST, RunDir.PASS_COUNTS, RunDir.FORECAST, RunDir.LOSS, RunDir.BACKTEST, RunDir.VERDICTS)


def write_report(run_dir: Path, html: bool = True) -> Path:
    """Write the run's report; returns the path of report.md."""
    from pipeline.records import atomic_write_text
    from pipeline.report.document import to_markdown
    from pipeline.report.figures import all_figures
    from pipeline.report.inputs import load_run
    from pipeline.report.sections import build_document
    from pipeline.report.tables import all_tables

    rundir = RunDir(run_dir)
    run = load_run(rundir.path)
    figures = all_figures(run, rundir.figures)
    doc = build_document(run, figures, all_tables(run))
    atomic_write_text(rundir.report_md, to_markdown(doc, relative_to=rundir.path))
    _readable(rundir.report_md)
    if html:
        from pipeline.report.html import to_html

        atomic_write_text(rundir.report_html, to_html(doc))
        _readable(rundir.report_html)
    return rundir.report_md


def _readable(path: Path) -> None:
    """Atomic writes create 0600 temp files; a report is meant to be shared (honour the umask)."""
    import os

    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o666 & ~umask)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="write report.md, report.html and figures/ for a run directory",
        description="Write report.md, a self-contained report.html and figures/*.png from a run directory's "
                    "stored results (manifest.json, pass_counts.csv, forecast.json, loss.json, backtest.json, "
                    "forecasts/, verdicts/). Recomputes nothing expensive; never changes the results.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="a run directory, e.g. results/<family>-<time>")
    parser.add_argument("--no-html", action="store_true", help="write report.md and figures only")
    parser.set_defaults(func=handle_report)


def handle_report(args) -> int:
    from pipeline.errors import UserError
    from pipeline.records import check_writable

    if args.run_dir.exists() and not args.run_dir.is_dir():
        raise UserError(f"{args.run_dir}: is a file, not a run directory (the folder `capforecast run` wrote)")
    if not args.run_dir.is_dir():
        raise UserError(f"{args.run_dir}: run directory not found")
    if not any((args.run_dir / name).exists() for name in RUN_FILES):
        raise UserError(f"{args.run_dir}: not a run directory: it holds none of {', '.join(RUN_FILES)}; give the "
                        f"folder `capforecast run` wrote, or run `capforecast count` and `fit` into it first")
    check_writable(args.run_dir, "RUN_DIR")
    md_path = write_report(args.run_dir, html=not args.no_html)
    print(md_path)
    if not args.no_html:
        print(RunDir(args.run_dir).report_html)
    figures = RunDir(args.run_dir).figures
    drawn = sorted(p.name for p in figures.glob("*.png"))
    print(f"figures in {figures}: {', '.join(drawn)}" if drawn else
          "no figures: the run holds nothing to draw yet (no forecast, loss or backtest)", file=sys.stderr)
    return 0
