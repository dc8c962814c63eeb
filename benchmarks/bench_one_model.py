"""The one-model forecast on every shared real family, side by side with the naive line and the report's line.

Per family (target = the largest size; a 4-size family also gives a backtest of its third size from the two
smallest, labelled "backtest"), development and validation halves printed apart (docs/forecasting.md):

- pass@1 over all problems: the one model (value, forecast interval, measurement interval, verdict by
  ``summaries.verdict``), and the naive straight line of ln(-ln pass@1) in ln C through the fit sizes;
- the report's metric (mean log pass rate over the problems every fit size solves) for n > 1: the one model and
  the report's aggregate line (``methods.fit_aggregate``) on the same problems;
- ObsScaling families (one pass@1 per model): the benchmark-level law (``score_law``) and the naive line.

Summaries per half: median |relative error|, 90% coverage (by the interval ``verdict`` picks), median relative
interval width. Run: .venv/bin/python benchmarks/bench_one_model.py [--half dev|validation|both] [--draws 500]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.real_families import (DEV_FILES, DEV_OBSSCALING, REAL, VALIDATION_FILES,  # noqa: E402
                                      VALIDATION_OBSSCALING, obsscaling_families)


def naive_line(x: np.ndarray, q: np.ndarray) -> float | None:
    """Straight line of ln(-ln pass@1) in ln C through the fit sizes, read at x = 0."""
    if np.any(q <= 0) or np.any(q >= 1):
        return None
    y = np.log(-np.log(q))
    slope, intercept = np.polyfit(x, y, 1)
    return float(np.exp(-np.exp(intercept)))


def cases(files: list[str]) -> list[tuple[str, str, list[int], int]]:
    """(label, file, fit rows, target row): the largest as target; for 4+ sizes also the third from the two smallest."""
    from pipeline.forecast.estimate import count_table
    from pipeline.records import read_pass_counts

    out = []
    for f in files:
        sizes = len(count_table(read_pass_counts(REAL / f)).checkpoints)
        out.append((f, f, list(range(sizes - 1)), sizes - 1))
        if sizes >= 4:
            out.append((f"backtest {f} (size 3 from sizes 1-2)", f, [0, 1], 2))
    return out


def per_problem_case(file: str, fit: list[int], target: int, options) -> dict:
    from pipeline.forecast.estimate import count_table
    from pipeline.forecast.methods import fit_aggregate
    from pipeline.forecast.one_model import forecast_grid
    from pipeline.forecast.problem_model import CountGrid
    from pipeline.errors import UserError
    from pipeline.records import read_pass_counts

    t = count_table(read_pass_counts(REAL / file))
    x = np.log(t.compute / t.compute[target])
    grid = CountGrid(x[fit], t.n[fit].astype(float), t.passed[fit].astype(float))
    start = time.perf_counter()
    result = forecast_grid(grid, options, target_n=t.n[target].astype(float), target_counts=t.passed[target].astype(float))
    seconds = time.perf_counter() - start
    q = (t.passed / np.maximum(t.n, 1)).mean(axis=1)
    row = {"pass1": result["pass_at_k"][0], "naive": naive_line(x[fit], q[fit]), "seconds": seconds,
           "weights": result["weights"], "weighing": result["weighing"], "diagnostics": result["diagnostics"],
           "metric": result["report_metric"], "n": int(t.n.max())}
    metric = result["report_metric"]
    if "error" not in metric:
        qual = np.flatnonzero(np.all(t.passed[fit] >= 1, axis=0))
        try:
            agg = fit_aggregate(x[fit], t.n[fit][:, qual].astype(float), t.passed[fit][:, qual].astype(float), 0.9, 500,
                                np.random.default_rng(0))
            row["aggregate"] = {"value": agg.prediction, "interval": list(agg.interval)}
        except UserError as exc:
            row["aggregate"] = {"error": str(exc)}
        row["stacked"] = old_stacked(x[fit], t.n[fit][:, qual], t.passed[fit][:, qual])
    return row


def old_stacked(x, n, c) -> dict:
    """Today's default (``stacked``, the chain this work replaces) on the same problems, while it is in the tree."""
    try:
        from pipeline.forecast.methods import fit_stacked
    except ImportError:
        return {"error": "not in this tree (run the baseline revision)"}
    from pipeline.errors import UserError

    try:
        fit = fit_stacked(x, n.astype(float), c.astype(float), 0.9, 1000, np.random.default_rng(0))
        return {"value": fit.prediction, "interval": list(fit.interval)}
    except UserError as exc:
        return {"error": str(exc)}


def score_case(name: str, rows: list, target: int, options) -> dict:
    """The benchmark-level law (``score_law.forecast_scores``, as ``fit --scores`` gives it) on one ObsScaling family:
    the checkpoints below ``target`` forecast it, greedy pass@1 over HumanEval's 164 problems."""
    from pipeline.forecast.one_model import SHOCK_PRIOR_LOG_SD, SHOCK_PRIOR_MEDIAN
    from pipeline.forecast.problem_model import ShockPrior
    from pipeline.forecast.score_law import forecast_scores

    rows = rows[: target + 1]
    compute = np.array([r[0] for r in rows])
    q = np.array([r[1] for r in rows])
    x = np.log(compute / compute[target])
    start = time.perf_counter()
    result = forecast_scores([r[2] for r in rows], compute, [1], q[:, None], 164, float(compute[target]), options,
                             ShockPrior(SHOCK_PRIOR_MEDIAN, SHOCK_PRIOR_LOG_SD))
    return {"pass1": result["pass_at_k"][0], "naive": naive_line(x[:target], q[:target]),
            "seconds": time.perf_counter() - start, "diagnostics": result["diagnostics"]}


def _fmt(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def rel(value, actual):
    return None if value is None or actual == 0 else abs(value - actual) / abs(actual)


def print_half(title: str, rows: list[tuple[str, dict]]) -> None:
    print(f"\n== {title} ==")
    print(f"{'family':<78} {'actual':>7} {'model [90%]':>26} {'meas. int.':>17} {'in':>3} {'err':>6} {'naive':>7} "
          f"{'err':>6}  s")
    errs, naive_errs, covered, widths = [], [], [], []
    m_errs, a_errs, m_cov, m_widths = [], [], [], []
    for label, r in rows:
        if "failed" in r:
            print(f"{label[:78]:<78} failed: {r['failed']}")
            continue
        b = r["pass1"]
        actual = b["actual"]
        e, ne = rel(b["value"], actual), rel(r["naive"], actual)
        band = b.get("measurement_interval") or b["interval"]
        print(f"{label[:78]:<78} {actual:>7.3f} {b['value']:>7.3f} [{b['interval'][0]:.3f}, {b['interval'][1]:.3f}]"
              f" [{band[0]:.3f},{band[1]:.3f}] {'yes' if b['verdict']['inside'] else 'NO':>3} "
              f"{_fmt(e, '.1%'):>6} {_fmt(r['naive'], '.3f'):>7} {_fmt(ne, '.1%'):>6} {r['seconds']:.0f}")
        covered.append(b["verdict"]["inside"])
        if actual > 0:
            widths.append((b["interval"][1] - b["interval"][0]) / actual)
        if e is not None and ne is not None:
            errs.append(e)
            naive_errs.append(ne)
        m = r.get("metric")
        if m and "actual" in m:
            me = rel(m["measurement_value"], m["actual"])   # like for like: what n samples measure
            agg = r.get("aggregate") or {}
            ae = rel(agg.get("value"), m["actual"])
            st = r.get("stacked") or {}
            se = rel(st.get("value"), m["actual"])
            print(f"{'':<6} report's metric on {m['problems']} problems: actual {m['actual']:.3f}, true {m['value']:.3f} "
                  f"[{m['interval'][0]:.3f}, {m['interval'][1]:.3f}], measured {m['measurement_value']:.3f} "
                  f"[{m['measurement_interval'][0]:.3f}, {m['measurement_interval'][1]:.3f}] "
                  f"{'inside' if m['verdict']['inside'] else 'OUTSIDE'}, err {me:.1%}; aggregate line "
                  + (f"{agg['value']:.3f} err {ae:.1%}" if ae is not None else f"({agg.get('error', 'n/a')[:40]})")
                + "; stacked " + (f"{st['value']:.3f} [{st['interval'][0]:.3f}, {st['interval'][1]:.3f}] err {se:.1%}"
                                  if se is not None else f"({st.get('error', 'n/a')[:50]})"))
            m_cov.append(m["verdict"]["inside"])
            m_widths.append((m["measurement_interval"][1] - m["measurement_interval"][0]) / abs(m["actual"]))
            if ae is not None:
                m_errs.append(me)
                a_errs.append(ae)
        elif m and "error" in m:
            print(f"{'':<6} report's metric: {m['error'][:110]}")
    if covered:
        print(f"pass@1: {len(covered)} forecasts, coverage {np.mean(covered):.0%} ({sum(covered)}/{len(covered)}), median "
              f"|rel err| model {np.median(errs):.1%} vs naive line {np.median(naive_errs):.1%} on the {len(errs)} "
              f"families both forecast, median interval width {np.median(widths):.0%} of the actual")
    if m_cov:
        print(f"report's metric: {len(m_cov)} forecasts, coverage {np.mean(m_cov):.0%}, median |rel err| model "
              f"{np.median(m_errs) if m_errs else float('nan'):.1%} vs aggregate line "
              f"{np.median(a_errs) if a_errs else float('nan'):.1%} ({len(m_errs)} both), median width "
              f"{np.median(m_widths):.0%}")


def main() -> None:
    from pipeline.forecast.one_model import ModelOptions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--half", default="both", choices=["dev", "validation", "both"])
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--json", type=Path, default=None, help="also write every row here")
    parser.add_argument("--only", default="both", choices=["per-problem", "scores", "both"])
    args = parser.parse_args()
    options = ModelOptions(draws=args.draws, warmup=args.draws)
    warnings.simplefilter("ignore")
    halves = {"dev": (DEV_FILES, DEV_OBSSCALING, "DEVELOPMENT half (may have set priors and choices)"),
              "validation": (VALIDATION_FILES, VALIDATION_OBSSCALING, "VALIDATION half (never used to choose)")}
    dump = {}
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared machine)")
    families = obsscaling_families()
    for half in (["dev", "validation"] if args.half == "both" else [args.half]):
        files, obs, title = halves[half]
        rows = []
        for label, file, fit, target in (cases(files) if args.only != "scores" else []):
            try:
                rows.append((label, per_problem_case(file, fit, target, options)))
            except Exception as exc:   # a failure is a result here: print it and go on
                rows.append((label, {"failed": f"{type(exc).__name__}: {exc}"}))
            r = rows[-1][1]
            brief = (f"pass@1 {r['pass1']['value']:.3f} [{r['pass1']['interval'][0]:.3f}, {r['pass1']['interval'][1]:.3f}]"
                     f" actual {r['pass1']['actual']:.3f} naive {_fmt(r['naive'], '.3f')}" if "pass1" in r else r.get("failed"))
            print(f"  done {label} ({r.get('seconds', 0):.0f} s): {brief}", file=sys.stderr, flush=True)
        for name in (obs if args.only != "per-problem" else []):
            members = families[name]
            targets = [(f"ObsScaling {name}", len(members) - 1)]
            if len(members) >= 4:
                targets.append((f"backtest ObsScaling {name} (size 3 from sizes 1-2)", 2))
            for label, target in targets:
                try:
                    rows.append((label, score_case(name, members, target, options)))
                except Exception as exc:
                    rows.append((label, {"failed": f"{type(exc).__name__}: {exc}"}))
        print_half(title, rows)
        dump[half] = [(label, {k: v for k, v in r.items() if k != "draws"}) for label, r in rows]
    if args.json:
        args.json.write_text(json.dumps(dump, indent=1, default=float))


if __name__ == "__main__":
    main()
