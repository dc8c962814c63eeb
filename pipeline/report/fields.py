"""Tolerant accessors for the producers' JSON (forecast, loss, backtest), whose formats may still grow."""
from __future__ import annotations

import math


def number(value) -> float | None:
    """A finite float, or None; accepts {"value": x} and {"estimate": x} wrappers."""
    if isinstance(value, dict):
        for key in ("value", "estimate", "mean", "point"):
            if key in value:
                return number(value[key])
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def interval(value, *fallback_keys) -> tuple[float, float] | None:
    """A [lo, hi] pair from a list or from a dict's 'interval'/'ci' (or the given keys), else None."""
    candidates = [value]
    if isinstance(value, dict):
        candidates = [value.get(k) for k in ("interval", "ci", *fallback_keys)]
        if "lo" in value and "hi" in value:
            candidates.append([value["lo"], value["hi"]])
        if "low" in value and "high" in value:
            candidates.append([value["low"], value["high"]])
    for cand in candidates:
        if isinstance(cand, (list, tuple)) and len(cand) == 2:
            lo, hi = number(cand[0]), number(cand[1])
            if lo is not None and hi is not None:
                return (min(lo, hi), max(lo, hi))
    return None


def param(source: dict | None, name: str) -> tuple[float | None, tuple[float, float] | None]:
    """A fitted parameter and its interval: ``name`` plus ``name_interval`` or ``intervals[name]``."""
    if not isinstance(source, dict):
        return None, None
    raw = source.get(name)
    if raw is None and isinstance(source.get("params"), dict):
        raw = source["params"].get(name)
    value = number(raw)
    found = interval(raw) if isinstance(raw, dict) else None
    for holder in (source, source.get("parameter_intervals"), source.get("intervals"), source.get("params")):
        if found is None and isinstance(holder, dict):
            found = interval(holder.get(f"{name}_interval")) or (
                interval(holder.get(name)) if holder is not source else None)
    return value, found


def level_of(source: dict | None, default: float | None = None) -> float | None:
    """The interval level (0.9) of a prediction block or its parent."""
    if not isinstance(source, dict):
        return default
    for holder in (source.get("prediction"), source):
        if isinstance(holder, dict) and number(holder.get("level")) is not None:
            return number(holder["level"])
    return default


def actual_value(source: dict | None) -> float | None:
    """The measured value at the target, when known."""
    if not isinstance(source, dict):
        return None
    return number(source.get("actual"))


def series(block, *names) -> list[float] | None:
    """The first of ``names`` in ``block`` that is a list of numbers (None entries become NaN)."""
    if not isinstance(block, dict):
        return None
    for name in names:
        values = block.get(name)
        if isinstance(values, list) and values:
            out = [number(v) for v in values]
            return [math.nan if v is None else v for v in out]
    return None


def level_label(level: float | None) -> str:
    return f"{100 * level:.0f}%" if level else "interval"


def comparison(source: dict | None) -> tuple[float | None, tuple[float, float] | None, bool]:
    """(actual, the interval to judge it by, whether that is a forecast redone on the target's solved problems)."""
    if not isinstance(source, dict):
        return None, None, False
    actual = actual_value(source)
    block = source.get("actual") if isinstance(source.get("actual"), dict) else {}
    same = block.get("prediction_on_same_problems")
    if isinstance(same, dict) and interval(same):
        return actual, judged_band(same), True
    prediction = source.get("prediction") if isinstance(source.get("prediction"), dict) else {}
    return actual, judged_band(prediction), False


def judged_band(prediction: dict) -> tuple[float, float] | None:
    """The measurement interval (what the target's sample budget will measure) when present, else the interval."""
    measured = interval({"interval": prediction.get("measurement_interval")})
    return measured or interval(prediction)
