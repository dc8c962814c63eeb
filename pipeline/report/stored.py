"""Stored results seen the same way by every part of the report: registered forecasts, their scores, backtest rows.

The prose (``sections``), the tables and the figures all read these views, so they never disagree on a number.
"""
from __future__ import annotations

from pipeline.report.fields import interval, number
from pipeline.report.inputs import RunInputs


def registered_for_target(run: RunInputs) -> list[dict]:
    name = run.target_name
    out = []
    for f in run.registered:
        target = f.get("target")
        target_name = target.get("name") if isinstance(target, dict) else target
        if target_name in (None, name):
            out.append(f)
    return out


def registered_at(forecast: dict) -> str | None:
    """When a registered forecast was recorded, as 'YYYY-MM-DD HH:MM UTC' (or as stored, if not ISO 8601)."""
    from datetime import datetime, timezone

    for key in ("registered_at", "created_at", "timestamp"):
        stamp = forecast.get(key)
        if isinstance(stamp, str):
            try:
                when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            except ValueError:
                return stamp
            when = when.astimezone(timezone.utc) if when.tzinfo else when
            return when.strftime("%Y-%m-%d %H:%M UTC")
    return None


def registered_prediction(record: dict) -> dict:
    """The prediction block of a registered record (pipeline.forecast.register nests the forecast)."""
    for holder in (record, record.get("forecast")):
        if isinstance(holder, dict) and isinstance(holder.get("prediction"), dict):
            return holder["prediction"]
    return {}


def scores_by_file(scores) -> dict[str, dict]:
    rows = scores.get("scores") or scores.get("forecasts") or scores.get("rows") or [] \
        if isinstance(scores, dict) else scores or []
    if isinstance(rows, dict):
        rows = [dict(v, file=k) for k, v in rows.items() if isinstance(v, dict)]
    out = {}
    for row in rows:
        if isinstance(row, dict):
            name = str(row.get("file") or row.get("forecast") or row.get("path") or "")
            out[name.rsplit("/", 1)[-1]] = row
    return out


def backtest_rows(run: RunInputs) -> list[dict]:
    """backtest.json rows normalised: name, method, factor, value, band, actual, error, covered, failure."""
    block = run.backtest or {}
    out = []
    for r in block.get("rows") or block.get("results") or []:
        if not isinstance(r, dict):
            continue
        pred = r.get("prediction") if "prediction" in r else r.get("forecast")
        value, actual = number(pred), number(r.get("actual"))
        band = interval(r.get("interval")) or (interval(pred) if isinstance(pred, dict) else None)   # the forecast's own
        judged = interval(r.get("judged_by")) or band                                              # what coverage uses
        error = number(r.get("signed_error"))
        if error is None:
            error = number(r.get("error"))
        if error is None and value is not None and actual is not None:
            error = value - actual
        covered = r.get("covered")
        if not isinstance(covered, bool):
            covered = (judged[0] <= actual <= judged[1]) if judged and actual is not None else None
        out.append({"name": str(r.get("target") or r.get("held_out") or r.get("checkpoint") or "?"),
                    "method": str(r.get("method") or ""), "holdout": r.get("holdout"),
                    "factor": number(r.get("extrapolation") or r.get("extrapolation_factor")),
                    "value": value, "band": band, "judged_band": judged, "actual": actual, "error": error,
                    "covered": covered, "judged_kind": str(r.get("covered_by") or "interval"),
                    "failure": r["error"] if isinstance(r.get("error"), str) else None})
    return out
