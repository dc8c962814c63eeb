"""argparse types shared by every subcommand: whole numbers >= 1, fractions in (0, 1], existing run directories.

Plumbing: a bad value becomes argparse's one-line usage error (exit 2), never a traceback deep in a stage.
"""
from __future__ import annotations

import argparse


def _whole_number_at_least(minimum: int, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (bootstrap replicates, workers, buckets, --limit)."""
    return _whole_number_at_least(1, text)


def non_negative_int(text: str) -> int:
    """An integer >= 0 (the loss bootstrap, where 0 means no interval)."""
    return _whole_number_at_least(0, text)


def fraction(text: str) -> float:
    """A number in (0, 1] (a fraction of the target's compute)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value


def level(text: str) -> float:
    """A number strictly between 0 and 1 (an interval level)."""
    value = fraction(text)
    if value == 1:
        raise argparse.ArgumentTypeError("must be strictly between 0 and 1, got 1")
    return value


# ---------------------------------------------------------------- where a setting comes from

def add_json_option(parser, what: str) -> None:
    """``--json``: the command's result as one JSON object on stdout; its lines for a person go to stderr."""
    parser.add_argument("--json", action="store_true",
                        help=f"print {what} as one JSON object on stdout (the lines for a person go to stderr)")


def print_json(obj) -> None:
    import json

    print(json.dumps(obj, ensure_ascii=False))


COMMAND_LINE = "command line"
RUN_DIRECTORY = "run directory (manifest.json)"
DEFAULT = "default"


def layered(given: dict, stored: dict, stored_label: str = RUN_DIRECTORY) -> tuple[dict, dict]:
    """Command line over the stored settings (a run directory's manifest, or a config) over the defaults.

    ``given`` holds every option the command knows (None: not given); ``stored`` the settings recorded for
    the run. Returns the values to set (defaults are left to the options class) and, per option, where its
    value came from. The one implementation of that rule: every stage's options pass through here."""
    values, source = {}, {}
    for name in dict.fromkeys([*given, *stored]):
        if given.get(name) is not None:
            values[name], source[name] = given[name], COMMAND_LINE
        elif stored.get(name) is not None:
            values[name], source[name] = stored[name], stored_label
        else:
            source[name] = DEFAULT
    return values, source


def describe_sources(options, source: dict) -> str:
    """'settings from the run directory: ...; from the command line: ...' for the terminal."""
    parts = []
    for label, key in (("from the run directory", RUN_DIRECTORY), ("from the command line", COMMAND_LINE)):
        names = [n for n, s in source.items() if s == key]
        if names:
            parts.append(f"{label}: " + ", ".join(f"{n}={getattr(options, n)}" for n in names))
    return "settings " + "; ".join(parts) if parts else "settings: defaults"


def one_run_dir(positional, option_value, option: str = "--out"):
    """The run directory given as RUN_DIR or by its older option spelling; both, if they differ, is an error."""
    from pathlib import Path

    from pipeline.errors import UserError

    if positional and option_value and Path(positional) != Path(option_value):
        raise UserError(f"two run directories given: {positional} and {option} {option_value}")
    return option_value or positional
