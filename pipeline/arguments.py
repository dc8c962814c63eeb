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
