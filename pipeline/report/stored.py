"""Stored results seen the same way by every part of the report: registered forecasts, their scores, backtest rows.

The prose (``sections``), the tables and the figures all read these views, so they never disagree on a number.
"""
from __future__ import annotations

from pipeline.report.fields import number, pair
from pipeline.report.inputs import RunInputs


def registered_for_target(run: RunInputs) -> list[dict]:
    """The registered records whose target is this run's."""
    return [f for f in run.registered if f["target"]["name"] in (None, run.target_name)]


def registered_at(record: dict) -> str:
    """When a registered forecast was recorded, as 'YYYY-MM-DD HH:MM UTC'."""
    from datetime import datetime, timezone

    when = datetime.fromisoformat(record["registered_at"].replace("Z", "+00:00"))
    return when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def registered_prediction(record: dict) -> dict:
    """The prediction block of a registered record."""
    return record["forecast"]["prediction"]


def scores_by_file(scores: dict | None) -> dict[str, dict]:
    """forecasts/scores.json's entries by the registered record's file name."""
    return {row["file"]: row for row in (scores or {}).get("scores", [])}


def backtest_rows(run: RunInputs) -> list[dict]:
    """backtest.json rows: name, method, factor, value, band, judged band, actual, error, covered, failure."""
    out = []
    for r in (run.backtest or {}).get("rows", []):
        band = pair(r.get("interval"))                      # the forecast's own
        judged = pair(r.get("judged_by")) or band           # what coverage uses
        error, value, actual = number(r.get("signed_error")), number(r.get("prediction")), number(r.get("actual"))
        scored = r.get("error") is None
        out.append({"name": r["target"], "method": r["method"], "holdout": r["holdout"],
                    "factor": number(r.get("extrapolation")), "value": value, "band": band, "judged_band": judged,
                    "actual": actual, "error": error if scored else None, "covered": r.get("covered"),
                    "judged_kind": r.get("covered_by") or "interval", "failure": r.get("error")})
    return out
