"""Accessors for the validated records (pipeline.rundir.results) that every part of the report shares, so the
prose, the tables and the figures never disagree on a number. Records are read strictly, so nothing here
guesses at other spellings of a field: a value is where the record's model puts it, or absent."""
from __future__ import annotations

import math


def number(value) -> float | None:
    """A finite float, or None (absent, null, NaN or infinite)."""
    if value is None or isinstance(value, bool):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def pair(values) -> tuple[float, float] | None:
    """A stored [lo, hi] as an ordered pair, or None when absent or not finite."""
    if values is None:
        return None
    lo, hi = number(values[0]), number(values[1])
    return None if lo is None or hi is None else (min(lo, hi), max(lo, hi))


def interval(block: dict | None) -> tuple[float, float] | None:
    """A block's ``interval`` (a prediction, a checkpoint's point, a curve row)."""
    return pair(block.get("interval")) if block else None


def param(source: dict | None, name: str) -> tuple[float | None, tuple[float, float] | None]:
    """A fitted parameter and its interval: ``name`` and ``name_interval``."""
    if not source:
        return None, None
    return number(source.get(name)), pair(source.get(f"{name}_interval"))


def level_of(source: dict | None, default: float | None = None) -> float | None:
    """The interval level (0.9) of a record's prediction, or of a block that holds ``level`` itself (options)."""
    if not source:
        return default
    holder = source.get("prediction") or source
    return number(holder.get("level")) if holder.get("level") is not None else default


def actual_value(source: dict | None) -> float | None:
    """The measured value at the target, when known."""
    return number((source.get("actual") or {}).get("value")) if source else None


def level_label(level: float | None) -> str:
    return f"{100 * level:.0f}%" if level else "interval"


def comparison(source: dict | None) -> tuple[float | None, tuple[float, float] | None, bool]:
    """(actual, the interval to judge it by, whether that is a forecast redone on the target's solved problems)."""
    if not source:
        return None, None, False
    same = (source.get("actual") or {}).get("prediction_on_same_problems")
    if same:
        return actual_value(source), judged_band(same), True
    return actual_value(source), judged_band(source.get("prediction") or {}), False


def judged_band(prediction: dict) -> tuple[float, float] | None:
    """The measurement interval (what the target's sample budget will measure) when present, else the interval."""
    return pair(prediction.get("measurement_interval")) or interval(prediction)
