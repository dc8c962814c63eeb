"""The ``capforecast`` command: one subcommand per stage, each defined next to the stage it runs.

Every module in the COMMAND_MODULES registry exposes ``register(subparsers)``, which adds its
subcommand(s) with ``set_defaults(func=...)``; ``func(args)`` returns an exit code.
Modules are imported only to build the parser, and keep their heavy imports inside ``func``.
"""
from __future__ import annotations

import argparse
import errno
import sys

import pipeline
from pipeline.errors import EXIT_BAD_INPUT, EXIT_INFRASTRUCTURE, InfrastructureError, UserError
from pipeline.progress import quiet_third_party_bars
from pipeline.registry import Lazy, Registry
from sandbox.api import SandboxUnavailable

COMMAND_MODULES = Registry("command module", {name: Lazy(f"{name}:register") for name in (
    "pipeline.run",
    "pipeline.generate.stage",
    "pipeline.slurm",
    "pipeline.execute",
    "pipeline.counts",
    "pipeline.forecast.commands",
    "pipeline.sampling.plan",
    "pipeline.forecast.loss",
    "pipeline.forecast.register",
    "pipeline.report.stage",
    "pipeline.reference.cli",
    "pipeline.generate.tinyfamily",
    "sandbox.cli",
)})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="capforecast",
        description="Forecast a large code model's HumanEval capability and loss from smaller checkpoints.",
    )
    parser.add_argument("--version", action="version", version=f"capforecast {pipeline.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        COMMAND_MODULES[name](subparsers)
    _describe_every_subcommand(subparsers)
    return parser


def _describe_every_subcommand(subparsers) -> None:
    """A subcommand without a description shows its one-line help on ``--help`` (nested ones too)."""
    helps = {a.dest: a.help for a in subparsers._choices_actions}
    for name, sub in subparsers.choices.items():
        if not sub.description:
            text = (helps.get(name) or name).rstrip(".")
            sub.description = text[:1].upper() + text[1:] + "."
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                _describe_every_subcommand(action)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet_third_party_bars()
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"capforecast {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (InfrastructureError, SandboxUnavailable) as exc:
        print(f"capforecast {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_INFRASTRUCTURE
    except OSError as exc:
        if exc.errno in MACHINE_ERRNOS:
            print(f"capforecast {args.command}: error: {os_error_paragraph(exc)}", file=sys.stderr)
            return EXIT_INFRASTRUCTURE
        if exc.filename is None:   # not about a path the user gave: a bug, keep the traceback
            raise
        print(f"capforecast {args.command}: error: {exc.filename}: {exc.strerror or exc}; check that the path "
              f"exists, is of the right kind (file or directory) and is writable", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"capforecast {args.command}: interrupted; rerun the same command to resume.", file=sys.stderr)
        return 130


# the machine, not the input: full disk or quota, I/O error, out of memory or file handles, a stale NFS handle
MACHINE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ENOMEM, errno.EMFILE, errno.ENFILE, errno.ESTALE,
                  errno.EFBIG}


def os_error_paragraph(exc: OSError) -> str:
    """One paragraph for an OSError of the machine: what failed, that nothing written was lost, how to resume."""
    where = f" writing {exc.filename}" if exc.filename else ""
    return (f"{exc.strerror or exc}{where}. Nothing already written was lost: JSONL files grow by whole flushed "
            f"lines (a torn last line is repaired on the next run) and every other file is replaced whole. Free the "
            f"resource (disk space, quota, memory) and rerun the same command: it resumes where it stopped.")


if __name__ == "__main__":
    sys.exit(main())
