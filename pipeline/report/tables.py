"""The report's tables, built from stored results only (pass@k bootstraps are the only arithmetic)."""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from pipeline.passk import per_problem_pass_at_k
from pipeline.records import PassCount
from pipeline.report.document import Table, fmt, fmt_factor, fmt_flops, fmt_interval, fmt_percent
from sandbox.api import STATUSES

from pipeline.report.fields import actual_value, comparison, interval, level_label, level_of, number, pair, param
from pipeline.report.inputs import RunInputs
from pipeline.report.stored import backtest_rows, registered_at, registered_prediction, scores_by_file

PASS_AT = (1, 10, 100)
BOOTSTRAP_REPS = 1000


def pass_at_k_with_interval(n, passed, k: int, level: float, reps: int = BOOTSTRAP_REPS, seed: int = 0):
    """Mean pass@k over problems and a bootstrap-over-problems interval; None when some n < k."""
    n, passed = np.asarray(n, dtype=int), np.asarray(passed, dtype=int)
    if n.size == 0 or n.min() < k:
        return None
    values = per_problem_pass_at_k(passed, n, k)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(reps, values.size))].mean(axis=1)
    tail = 100 * (1 - level) / 2
    return float(values.mean()), (float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail)))


def counts_by_checkpoint(counts: list[PassCount]) -> dict[str, dict]:
    """{checkpoint: {compute, n[], passed[], task_ids[]}}, repeated rows summed, sorted by compute."""
    grouped: dict[str, dict] = {}
    for row in counts:
        entry = grouped.setdefault(row.checkpoint, {"compute": row.compute, "cells": defaultdict(lambda: [0, 0])})
        cell = entry["cells"][row.task_id]
        cell[0] += row.n
        cell[1] += row.passed
    out = {}
    for name, entry in sorted(grouped.items(), key=lambda kv: (kv[1]["compute"], kv[0])):
        tasks = sorted(entry["cells"])
        out[name] = {"compute": entry["compute"], "task_ids": tasks,
                     "n": np.array([entry["cells"][t][0] for t in tasks]),
                     "passed": np.array([entry["cells"][t][1] for t in tasks])}
    return out


def _fit_status(run: RunInputs) -> dict[str, str]:
    status = {}
    for p in (run.forecast or {}).get("points", []):
        status[p["checkpoint"]] = "yes" if p["used_in_fit"] else "no"
    if run.target_name in status or run.counts:
        status[run.target_name] = "target"
    return status


def checkpoint_table(run: RunInputs, level: float) -> Table | None:
    """Per checkpoint: compute, samples, pass@1/10/100 with bootstrap intervals, use in the fit."""
    grouped = counts_by_checkpoint(run.counts)
    if not grouped:
        return None
    target_c, in_fit = run.target_compute, _fit_status(run)
    measured = {p["checkpoint"]: p for p in (run.forecast or {}).get("points", [])}
    rows = []
    for name, g in grouped.items():
        cells = [name, fmt_flops(g["compute"]), fmt(g["compute"] / target_c) if target_c else "—",
                 str(len(g["task_ids"])), str(int(g["n"].sum()))]
        for k in PASS_AT:
            est = pass_at_k_with_interval(g["n"], g["passed"], k, level)
            cells.append("—" if est is None else f"{fmt_percent(est[0])} [{fmt_percent(est[1][0])}, "
                                                  f"{fmt_percent(est[1][1])}]")
        point = measured.get(name, {})
        value = number(point.get("mean_log_pass_rate"))
        cells.append("—" if value is None else f"{fmt(value)} {fmt_interval(interval(point))}")
        cells.append(in_fit.get(name, "—"))
        rows.append(cells)
    return Table(
        "Checkpoints", ["checkpoint", "compute", "C / C_target", "problems", "samples",
                        *(f"pass@{k}" for k in PASS_AT), "mean log pass rate (subset)", "in fit"], rows,
        note=f"pass@k: unbiased estimator (Chen et al. 2021) averaged over all problems the checkpoint was "
             f"sampled on; {level_label(level)} intervals from {BOOTSTRAP_REPS} bootstrap resamples of problems. "
             f"'—' where fewer than k samples per problem were drawn. Mean log pass rate: over the fit's problem "
             f"subset (the points of Figure 1), as stored by the fit.",
        slug="checkpoints")


def status_table(run: RunInputs) -> Table | None:
    """How every executed sample ended, per checkpoint (from verdicts/*.jsonl)."""
    if not run.statuses:
        return None
    extra = sorted({s for tally in run.statuses.values() for s in tally} - set(STATUSES))
    columns = list(STATUSES) + extra
    rows = [[name, *(str(tally.get(s, 0)) for s in columns), str(sum(tally.values()))]
            for name, tally in run.statuses.items()]
    return Table("Execution outcomes per checkpoint", ["checkpoint", *columns, "total"], rows,
                 note="From verdicts/*.jsonl. 'passed' is a pass; 'failed', 'timed out', 'out of memory' and 'crashed' "
                      "are failures; 'sandbox error' rows are missing data, left out of n (the pass counts) and "
                      "retried when the stage is rerun; many of them mean the harness, not the model, failed.",
                 slug="outcomes")


def subset_table(run: RunInputs) -> Table | None:
    """What the fit used and why everything else was left out, grouped by reason."""
    forecast = run.forecast or {}
    excluded = forecast.get("excluded", [])
    used = forecast.get("problems", [])
    if not excluded and not used:
        return None
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for row in excluded:
        groups[(row["kind"], row["reason"])].append(row["id"])
    rows = [["used", "problem", str(len(used)), "solved at least once by every model in the fit",
             _id_list(used)]]
    rows += [["excluded", kind, str(len(ids)), reason, _id_list(ids)]
             for (kind, reason), ids in sorted(groups.items(), key=lambda kv: (kv[0][0] != "model", -len(kv[1])))]
    hardest = forecast.get("hardest_excluded")
    if hardest and hardest["problems"]:
        rows.append(["not bucketed", "problem", str(len(hardest["problems"])),
                     "among the hardest (left out of the difficulty buckets, as in the GPT-4 report)",
                     _id_list(hardest["problems"])])
    if "non_monotone" in forecast:
        falling = forecast["non_monotone"]
        rows.append(["flagged", "problem", str(len(falling)),
                     "pass rate falls with scale (significant negative trend; kept in the fit)",
                     _id_list(falling) or "none"])
    negative = forecast.get("negative_exponent")
    if negative and negative["share_of_forecast"] is not None:
        rows.append(["flagged", "problem", str(len(negative["problems"])),
                     f"fitted exponent negative; {100 * negative['share_of_forecast']:.1f}% of the forecast −log pass "
                     "rate at the target", _id_list(negative["problems"]) or "none"])
    return Table("Problem subset and exclusions", ["", "kind", "count", "reason", "which"], rows,
                 note="The GPT-4 report's rule: keep problems P and models M such that every model in M solves every "
                      "problem in P at least once (log pass rate is undefined at zero passes).", slug="subset")


def _id_list(ids: list, limit: int = 12) -> str:
    ids = [str(i) for i in ids]
    return ", ".join(ids[:limit]) + (f", … (+{len(ids) - limit})" if len(ids) > limit else "")


def bucket_table(run: RunInputs) -> Table | None:
    """One forecast per difficulty bucket, as the GPT-4 report made."""
    buckets = (run.forecast or {}).get("buckets", [])
    if not buckets:
        return None
    rows = []
    for b in buckets:
        pred = b.get("prediction") or {}
        actual, judged_by, _ = comparison(b)
        rates = pair(b["pass_rate_range"])
        rows.append([str(b["bucket"]), str(len(b["problems"])),
                     f"{rates[0]:.0%}–{rates[1]:.0%}" if rates else "—",
                     fmt(number(pred.get("value"))), fmt_interval(interval(pred)), fmt(actual),
                     _verdict(actual, judged_by) if not b.get("error") else f"no fit: {b['error']}"])
    return Table("Forecast per difficulty bucket (1 = easiest)",
                 ["bucket", "problems", "fit-model pass rate", "forecast", level_label(level_of(run.forecast)),
                  "actual", "inside?"], rows,
                 note="Buckets split the problems by the fit checkpoints' pooled pass rate; each bucket has its own "
                      "fit and forecast.", slug="buckets")


def methods_table(run: RunInputs) -> Table | None:
    """The forecast under every fitting method the fit stage tried (the chosen one first)."""
    forecast = run.forecast or {}
    others = forecast.get("alternatives")
    if run.forecast_error or not others:
        return None
    level = level_label(level_of(forecast))
    rows = [[f"{forecast.get('method', '?')} (used)", fmt(number(forecast["prediction"].get("value"))),
             fmt_interval(interval(forecast["prediction"])), fmt(number(forecast.get("alpha"))),
             fmt(number(forecast.get("k")))]]
    for name, alt in others.items():
        if "error" in alt:
            rows.append([name, "—", "—", "—", f"no fit: {alt['error']}"])
            continue
        pred = alt.get("prediction") or {}
        rows.append([name, fmt(number(pred.get("value"))), fmt_interval(interval(pred)),
                     fmt(number(alt.get("alpha"))), fmt(number(alt.get("k")))])
    note = ("'aggregate' is the GPT-4 report's method (one law fitted to the mean log pass rate); "
            "'per-problem' fits each problem's law with pooled exponents.")
    law = forecast["law"]
    departure = law.get("departure_from_aggregate")
    if departure and departure.get("applied") and number(departure.get("z")) is not None:
        note += (f" The default's per-problem laws depart from the aggregate line by {departure['departure']:+.0%} "
                 f"at the target, {abs(departure['z']):.1f} bootstrap sd; it keeps {departure['kept']:.0%} of that "
                 "departure (none within 2 sd: the data cannot tell the two laws apart there).")
    rolling = law.get("rolling") or {}
    ratio = number(rolling.get("spread_ratio"))
    if ratio is not None and ratio < 0.995:
        note += (f" Its rolling backtests inside the fit missed by {ratio:.0%} of the spread its draws allowed, so the "
                 "optimistic half of its interval is narrowed to that (the pessimistic half keeps its width).")
    return Table("Forecast by fitting method", ["method", "forecast", level, "α", "k"], rows, note=note,
                 slug="methods")


def _verdict(actual: float | None, band) -> str:
    if actual is None or band is None:
        return "—"
    return "✓ yes" if band[0] <= actual <= band[1] else "✗ no"


def parameter_table(run: RunInputs) -> Table | None:
    """Fitted parameters of the capability law and the loss law, with their intervals."""
    rows = []
    meaning = {"alpha": "−(mean log pass rate) at the target (C = 1)", "k": "exponent: how fast it falls with compute",
               "a": "scale of the reducible loss", "b": "exponent of compute (negative)",
               "c": "irreducible loss (nats/token)"}
    for source, law, names in ((run.forecast, "capability: −E_P[ln p] = α·C^(−k)", ("alpha", "k")),
                               (run.loss, "loss: L(C) = a·C^b + c", ("a", "b", "c"))):
        if not source or "error" in source:
            continue
        for name in names:
            value, band = param(source, name)
            if value is not None:
                rows.append([law, {"alpha": "α"}.get(name, name), fmt(value, 4), fmt_interval(band, 4), meaning[name]])
    if not rows:
        return None
    fit = (run.loss or {}).get("fit")
    notes = [n for key in ("warnings", "identifiability") for n in fit[key]] if fit else []
    if notes:
        rows.append(["loss: L(C) = a·C^b + c", "identifiability", "—", "—", "; ".join(notes)])
    return Table("Fitted parameters", ["law", "parameter", "value", "interval", "meaning"], rows,
                 note="Capability compute is normalised so the target has C = 1." + (
                     " The loss law's irreducible term c trades off against a here: read a + c (the forecast), "
                     "not either alone." if any("trades off" in n for n in notes) else ""),
                 slug="parameters")


def backtest_table(run: RunInputs) -> Table | None:
    """Each held-out checkpoint and method: how far the fit extrapolated, what it forecast, what came out."""
    rows = []
    for r in backtest_rows(run):
        verdict = ("✓ yes" if r["covered"] else "✗ no") if r["covered"] is not None else "—"
        judged = fmt_interval(r["judged_band"]) if r["judged_band"] != r["band"] else "(the forecast interval)"
        rows.append([r["name"], r["method"] or "—", fmt_factor(r["factor"]),
                     fmt(r["value"]), fmt_interval(r["band"]), judged, fmt(r["actual"]), fmt(r["error"]),
                     f"no forecast: {r['failure']}" if r["failure"] else verdict])
    if not rows:
        return None
    return Table("Backtest: forecasts of held-out checkpoints from smaller ones",
                 ["held out", "method", "extrapolation", "forecast", "forecast interval", "measurement interval",
                  "actual", "error", "inside the measurement interval?"], rows,
                 note="Error = forecast − actual, in mean log pass rate, on the problems the held-out checkpoint "
                      "solved. Extrapolation = held-out compute ÷ largest compute in that fit. The forecast interval "
                      "is for the true mean log pass rate; the measurement interval is what the held-out "
                      "checkpoint's samples would measure (the forecast's uncertainty plus their binomial noise), "
                      "and coverage is judged by it (by the forecast interval where a method has none).",
                 slug="backtest")


def registered_table(run: RunInputs) -> Table | None:
    """Forecasts registered before their target was measured, and how each scored."""
    scores = scores_by_file(run.scores)
    rows = []
    for f in run.registered:
        pred = registered_prediction(f)
        score = scores.get(f["_file"], {})
        target = f["target"]
        value, band = number(pred.get("value")), interval(pred)
        actual = actual_value(score) if score else actual_value(f["forecast"])
        covered = score.get("within_interval")
        if covered is None:
            covered = None if actual is None or band is None else band[0] <= actual <= band[1]
        before = score.get("registered_before_target_samples")
        rows.append([registered_at(f), str(target["name"] or "—"),
                     fmt(value), fmt_interval(band), fmt(actual),
                     fmt(value - actual) if value is not None and actual is not None else "—",
                     "—" if covered is None else "✓ yes" if covered else "✗ no",
                     {True: "✓ yes", False: "✗ no"}.get(before, "unknown") +
                     (f" ({score['why']})" if before is not True and score.get("why") else ""),
                     f["_file"]])
    if not rows:
        return None
    return Table("Registered forecasts vs actual", ["registered (UTC)", "target", "forecast", "interval",
                                                    "actual", "error", "inside?", "before target's samples?",
                                                    "file"], rows,
                 note="Registered = an immutable record in forecasts/ made from the smaller checkpoints only. Error = "
                      "forecast − actual (mean log pass rate), on the record's problems that the target solved.",
                 slug="registered")


def all_tables(run: RunInputs) -> dict[str, Table | None]:
    """Every table, keyed by slug; None where the run has no data for it."""
    from pipeline.report.provenance import provenance_table

    level = level_of(run.forecast, 0.9) or 0.9
    return {"checkpoints": checkpoint_table(run, level), "outcomes": status_table(run),
            "subset": subset_table(run), "buckets": bucket_table(run), "parameters": parameter_table(run),
            "methods": methods_table(run),
            "backtest": backtest_table(run), "registered": registered_table(run),
            "provenance": provenance_table(run)}
