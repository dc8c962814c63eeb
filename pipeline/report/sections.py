"""The report's words: the headline a busy reader stops at, and the order of sections."""
from __future__ import annotations

import math

import numpy as np
from pathlib import Path

from pipeline.report.document import (Document, Figure, Heading, Paragraph, Table, fmt, fmt_factor, fmt_flops,
                                      fmt_interval, fmt_percent, plural)
from pipeline.report.fields import actual_value, comparison, interval, level_label, level_of, number, pair
from pipeline.report.inputs import RunInputs
from pipeline.rundir import RunDir
from pipeline.report.stored import backtest_rows, registered_at, registered_for_target, registered_prediction, scores_by_file


def _registration_note(run: RunInputs) -> str:
    """'; registered 2026-11-26 12:00 UTC, before the target's samples existed' or ''.

    The claim belongs to a registered record's own numbers: when the headline's forecast (forecast.json)
    differs from the record's (a later refit with other settings), the record's prediction is quoted instead."""
    registered = registered_for_target(run)
    if not registered:
        return ""
    first = registered[0]
    before = scores_by_file(run.scores).get(first["_file"], {}).get("registered_before_target_samples")
    when = f"registered {registered_at(first)}"
    if before is True:
        when += ", before the target's samples existed"
    elif before is False:
        when += ", **after** the target's data existed (not a blind forecast)"
    own = registered_prediction(first)
    shown = (run.forecast or {}).get("prediction") or {}
    if _same_prediction(own, shown):
        return f"; {when}"
    band = interval(own)
    return (f". This forecast was **not** registered: a forecast {when}, predicted {fmt(number(own.get('value')))} "
            f"{fmt_interval(band)} (table *Registered forecasts vs actual*)")


def _same_prediction(a: dict, b: dict) -> bool:
    """True when two prediction blocks hold the same value and interval (to 1e-9)."""
    va, vb = number(a.get("value")), number(b.get("value"))
    ia, ib = interval(a), interval(b)
    if va is None or vb is None or abs(va - vb) > 1e-9 or (ia is None) != (ib is None):
        return False
    return ia is None or all(abs(x - y) <= 1e-9 for x, y in zip(ia, ib))


def extrapolation_factor(run: RunInputs) -> float | None:
    """Target compute over the largest compute used in the fit."""
    xs = [p["normalized_compute"] for p in (run.forecast or {}).get("points", [])
          if p["used_in_fit"] and 0 < p["normalized_compute"] < 1]
    return 1.0 / max(xs) if xs else None


def _check(actual: float | None, band, kind: str = "measurement") -> str:
    if actual is None:
        return "actual not yet measured"
    if band is None:
        return f"actual {fmt(actual)}"
    if band[0] <= actual <= band[1]:
        return f"actual **{fmt(actual)}** ✓ inside the {kind} interval {fmt_interval(band)}"
    return f"actual **{fmt(actual)}** ✗ outside the {kind} interval {fmt_interval(band)}"


def headline(run: RunInputs) -> list[Paragraph]:
    """The answer in words, for a reader who will not look further."""
    out: list[Paragraph] = []
    compute = f" at C = {fmt_flops(run.target_compute)}" if run.target_compute else ""
    error = run.forecast_error
    if error:
        out.append(Paragraph(f"**No capability forecast for {run.target_name}{compute}.** Reason: {error.rstrip('.')}. "
                             f"The sections below show what the run did measure.", kind="warning"))
    else:
        forecast = run.forecast
        pred = forecast["prediction"]
        value, band, level = number(pred.get("value")), interval(pred), level_of(forecast, 0.9)
        problems = len(forecast["problems"])
        text = (f"**Forecast for {run.target_name}{compute}: mean log pass rate {fmt(value)} "
                f"{fmt_interval(band)} ({level_label(level)} forecast interval)**")
        if problems:
            text += f" over {plural(problems, 'problem')}"
        if value is not None:
            text += (f", i.e. a geometric-mean pass rate ≈ {fmt_percent(math.exp(value))}"
                     + (f" [{fmt_percent(math.exp(band[0]))}, {fmt_percent(math.exp(band[1]))}]" if band else "")
                     + " (pass@1 averaged over these problems is at least this)")
        measured = pair(pred.get("measurement_interval"))
        if measured:
            n = pred.get("measurement_n")
            centre = number(pred.get("measurement_value"))
            text += (f"; what {n if isinstance(n, int) else 'its'} samples per problem will measure at the target: "
                     + (f"{fmt(centre)} " if centre is not None else "") + f"{fmt_interval(measured)} (measurement interval)")
        factor = extrapolation_factor(run)
        if factor:
            text += f"; extrapolated {fmt_factor(factor)} beyond the largest checkpoint in the fit"
        text += _registration_note(run)
        actual, judged_by, same_problems = comparison(forecast)
        block = forecast.get("actual") or {}
        if actual is None and block.get("note"):
            text += f"; no actual value: {str(block['note']).rstrip('.')}"
        else:
            judged_block = (block.get("prediction_on_same_problems") if same_problems else pred) or {}
            kind = "measurement" if judged_block.get("measurement_interval") else "forecast"
            text += f"; {_check(actual, judged_by, kind)}"
        if same_problems:
            n_solved = block["n_problems"]
            same = block.get("prediction_on_same_problems") or {}
            text += (f" (compared on the {n_solved} problems the target solved at least once, where the forecast "
                     f"is {fmt(number(same.get('value')))} {fmt_interval(interval(same))})")
        out.append(Paragraph(text + ".", kind="headline"))
    loss = run.loss
    if loss and "error" not in loss:
        band = interval(loss["prediction"])
        out.append(Paragraph(
            f"**Loss forecast{compute}: {_loss(number(loss['prediction'].get('value')))} nats/token "
            f"[{_loss(band[0] if band else None)}, {_loss(band[1] if band else None)}]** ({level_label(level_of(loss, 0.9))}"
            f"{' prediction interval' if loss['prediction'].get('interval_kind') == 'prediction' else ''}); "
            f"{_check(actual_value(loss), band, 'forecast')}.",
            kind="headline"))
    elif loss:
        out.append(Paragraph(f"No loss forecast: {loss['error']}.", kind="note"))
    evidence = evidence_summary(run)
    if evidence:
        out.append(Paragraph(evidence, kind="headline"))
    summary = backtest_summary(run)
    if summary:
        out.append(Paragraph(summary, kind="headline"))
    return out


def evidence_summary(run: RunInputs) -> str | None:
    """'Evidence: 5 checkpoints from … to … FLOPs (2 decades), 49 of 60 problems, 100 samples each.'"""
    if not run.counts:
        return None
    forecast = run.forecast if not run.forecast_error else {}
    computes = {c.checkpoint: c.compute for c in run.counts}
    fit = [m for m in forecast.get("models", []) if m in computes] or [c for c in computes if c != run.target_name]
    if not fit:
        return None
    lo, hi = min(computes[c] for c in fit), max(computes[c] for c in fit)
    where = "in the fit" if forecast.get("models") else "besides the target"
    text = (f"**Evidence:** {len(fit)} checkpoint{'s' if len(fit) > 1 else ''} {where}, {fmt_flops(lo)} to {fmt_flops(hi)}"
            + (f" ({fmt(math.log10(hi / lo), 2)} decades of compute)" if hi > lo else ""))
    tasks = {c.task_id for c in run.counts}
    used = forecast.get("problems", [])
    text += f"; {len(used)} of {plural(len(tasks), 'problem')} qualify" if used else f"; {plural(len(tasks), 'problem')}"
    per_cell = sorted(c.n for c in run.counts if c.checkpoint in fit)
    if per_cell:
        median = per_cell[len(per_cell) // 2]
        text += (f"; {median} samples per problem per checkpoint" if per_cell[0] == per_cell[-1]
                 else f"; {per_cell[0]}–{per_cell[-1]} (median {median}) samples per problem per checkpoint")
    return text + "."


def _loss(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def backtest_summary(run: RunInputs) -> str | None:
    """'Backtest (per-problem): 5 of 6 held-out forecasts inside their 90% intervals…' or None."""
    rows = [r for r in backtest_rows(run) if r["failure"] is None and r["error"] is not None]
    method = (run.forecast or {}).get("method")
    if any(r["method"] == method for r in rows):
        rows = [r for r in rows if r["method"] == method]
    if not rows:
        return None
    covered = [r["covered"] for r in rows if r["covered"] is not None]
    errors = sorted(abs(r["error"]) for r in rows)
    factors = [r["factor"] for r in rows if r["factor"]]
    text = (f"**Backtest{f' ({method} method)' if method and rows[0]['method'] else ''}:** "
            f"{len(rows)} forecast{'s' if len(rows) > 1 else ''} of held-out checkpoints from smaller ones")
    if covered:
        text += (f"; {sum(covered)} of {len(covered)} actuals inside their {level_label(level_of(run.forecast, 0.9))} "
                 "measurement interval")
    text += f"; median |error| {fmt(float(np.median(errors)), 2)} in mean log pass rate"
    if factors:
        text += f", at {fmt_factor(min(factors))}–{fmt_factor(max(factors))} extrapolation"
    return text + "."


def build_document(run: RunInputs, figures: dict[str, Path | None], tables: dict[str, Table | None]) -> Document:
    """Headline, figures and tables in reading order; absent parts say plainly why they are absent."""
    doc = Document(f"Capability forecast — {run.family}")
    doc.add(*headline(run))
    if run.missing:
        doc.add(Paragraph("Not in this run directory: " + ", ".join(f"`{m}`" for m in run.missing) + ".",
                          kind="note"))
    doc.add(Heading("Capability"))
    doc.add(_figure(figures, "capability", "Figure 1. Mean log pass rate against training compute normalised so the "
                    "target is 1 (as in the GPT-4 report's Figure 2), with the fitted law, its interval, the forecast "
                    "and, when known, the actual target value. Each checkpoint's bar is the bootstrap (basic) "
                    "interval of its measured value from sampling noise alone (problems held fixed); the bars are "
                    "lopsided, often with the point near one end, because log(c/n) from n samples is biased "
                    "low at small pass counts and the basic interval reflects the bootstrap's skew back onto the "
                    "estimate.", "capability forecast"))
    doc.add(_figure(figures, "buckets", "Figure 2. The same per difficulty bucket (1 = easiest).", None))
    doc.add(tables.get("buckets"), tables.get("parameters"), tables.get("methods"))
    doc.add(Heading("Loss"))
    doc.add(_figure(figures, "loss", "Figure 3. Final loss L(C) against training compute with the fitted "
                    "a·C^b + c (as in the GPT-4 report's Figure 1).", "loss forecast", run.loss, RunDir.LOSS))
    doc.add(Heading("Evidence"))
    doc.add(tables.get("checkpoints"), tables.get("outcomes"), tables.get("subset"))
    doc.add(_figure(figures, "atlas", "Figure 4. Per-problem pass rate against compute; problems whose pass rate "
                    "falls with scale are highlighted.", None))
    doc.add(Heading("Track record"))
    doc.add(_figure(figures, "backtest", "Figure 5. Backtest: forecast error against extrapolation factor, "
                    "filled when the actual value fell inside the interval.", "backtest", run.backtest,
                    RunDir.BACKTEST))
    doc.add(tables.get("backtest"), tables.get("registered"))
    if not tables.get("registered"):
        doc.add(Paragraph("No registered forecasts in `forecasts/` yet.", kind="note"))
    doc.add(Heading("Provenance"))
    doc.add(tables.get("provenance"))
    return doc


def _figure(figures: dict, key: str, caption: str, missing_what: str | None, source: dict | None = None,
            file: str = ""):
    path = figures.get(key)
    if path is not None:
        return Figure(path, caption, slug=key)
    if source and source.get("error"):
        return Paragraph(f"No {missing_what}: {source['error']} (from `{file}`).", kind="note")
    if missing_what:
        return Paragraph(f"No figure: this run has no {missing_what}" + (f" (`{file}`)." if file else "."),
                         kind="note")
    return None
