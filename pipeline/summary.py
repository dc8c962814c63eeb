"""The answer on the terminal at the end of ``capforecast run``: a few lines (or one JSON object with ``--json``).

Read from the run directory's stored results only (forecast.json, loss.json, backtest.json, pass_counts.csv,
forecasts/scores.json), so it says exactly what the report says.
"""
from __future__ import annotations

import math
from pathlib import Path

from pipeline.passk import cells_by_checkpoint, fixed, pass_at_k
from pipeline.records import read_pass_counts
from pipeline.rundir import RunDir


def _read(path: Path, read) -> dict | None:
    """A result file read strictly (pipeline.rundir.results), or None when the stage has not written it."""
    return read(path) if path.is_file() else None


def run_summary(run_dir: Path) -> dict:
    """The summary as plain data: forecast, actual, loss, pass@1 per checkpoint, backtest coverage, report path."""
    from pipeline.rundir.results import read_backtest, read_forecast, read_loss

    run = RunDir(run_dir)
    manifest = run.read_manifest() if run.has_manifest() else None
    forecast = _read(run.forecast, read_forecast) or {"error": f"{RunDir.FORECAST} is missing"}
    target = forecast.get("target") or (manifest.target.model_dump() if manifest else {})
    out: dict = {"run_dir": str(run.path), "family": manifest.family if manifest else None,
                 "target": {"name": target.get("name"), "compute": target.get("compute")}}
    pred = forecast.get("prediction") or {}
    out["forecast"] = {"quantity": "mean log pass rate over problems", "value": pred.get("value"),
                       "interval": pred.get("interval"), "level": pred.get("level"), "method": forecast.get("method"),
                       "problems": len(forecast.get("problems", [])) or None}
    if forecast.get("error"):
        out["forecast"]["error"] = forecast["error"]
    out["forecast"]["registered"] = _registration(run, pred)
    actual = (forecast.get("actual") or {}).get("value")
    band = pred.get("interval")
    out["actual"] = {"value": actual, "inside_interval": (bool(band[0] <= actual <= band[1])
                                                           if actual is not None and band else None)}
    loss = _read(run.loss, read_loss)
    if loss is None:
        out["loss"] = {"error": "no loss stage in this run (loss.enabled: false, or not run yet)"}
    elif loss.get("error"):
        out["loss"] = {"error": loss["error"]}
    else:
        lp = loss["prediction"]
        out["loss"] = {"quantity": "mean loss per token (nats)", "value": lp["value"], "interval": lp["interval"],
                       "level": lp["level"], "actual": (loss.get("actual") or {}).get("value")}
    out["checkpoints"] = _pass_rates(run, target.get("name"))
    out["backtest"] = _backtest(_read(run.backtest, read_backtest), forecast.get("method"))
    out["report"] = str(run.report_md) if run.report_md.exists() else None
    return out


def _registration(run: RunDir, pred: dict) -> dict | None:
    from pipeline.rundir.results import read_scores

    scores = _read(run.scores, read_scores) or {}
    for s in scores.get("scores", []):
        own = s["prediction"]
        same = pred.get("value") is not None and abs(own["value"] - pred["value"]) <= 1e-9
        return {"file": s["file"], "registered_at": s["registered_at"],
                "before_target_samples": s["registered_before_target_samples"],
                "same_numbers_as_forecast": same, "value": own["value"], "interval": own["interval"]}
    return None


def _pass_rates(run: RunDir, target: str | None) -> list[dict]:
    try:
        counts = read_pass_counts(run.pass_counts)
    except Exception:  # noqa: BLE001 - a summary never fails the run; missing counts show as none
        return []
    compute = {c.checkpoint: c.compute for c in reversed(counts)}   # each checkpoint's first row
    return [{"name": name, "compute": compute[name], "is_target": name == target, "problems": len(cells),
             "pass@1": pass_at_k(cells, 1), "pass@10": pass_at_k(cells, 10)}
            for name, cells in sorted(cells_by_checkpoint(counts).items(), key=lambda item: compute[item[0]])]


def _backtest(result: dict | None, method: str | None) -> dict:
    if result is None:
        return {"error": f"no {RunDir.BACKTEST}"}
    if result.get("error"):
        return {"error": result["error"]}
    summary = result.get("summary") or {}
    method = method if method in summary else next(iter(summary), None)
    s = summary.get(method) or {}
    return {"method": method, "scored": s.get("scored"), "coverage": s.get("coverage"),
            "level": (result.get("options") or {}).get("level"), "median_abs_error": s.get("median_abs_error")}


def _num(value, spec: str = ".4f") -> str:
    if spec == ".4f":
        return fixed(value)
    return "n/a" if value is None else format(value, spec)


def _band(band) -> str:
    return f"[{_num(band[0])}, {_num(band[1])}]" if band else "[no interval]"


def format_summary(s: dict) -> str:
    """The summary as aligned lines for a person."""
    t = s["target"]
    at = f"{t['name'] or 'target'}" + (f" (C = {t['compute']:.3g} FLOPs)" if t.get("compute") else "")
    f = s["forecast"]
    lines = [f"capforecast run {s.get('family') or ''}: {s['run_dir']}"]
    if f.get("value") is None:
        lines.append(f"forecast  NONE for {at}: {f.get('error') or 'no prediction'}")
    else:
        level = f" ({f['level']:.0%})" if f.get("level") else ""
        geo = f", geometric-mean pass rate {math.exp(f['value']):.1%}"
        lines.append(f"forecast  {at}: {f['quantity']} {_num(f['value'])} {_band(f['interval'])}{level}{geo}"
                     + (f", {f['problems']} problems" if f.get("problems") else ""))
        reg = f.get("registered")
        if reg:
            claim = {True: "registered before the target's samples existed",
                     False: "registered AFTER the target's data existed", None: "registration time unknown"}
            what = claim[reg["before_target_samples"]]
            if not reg["same_numbers_as_forecast"]:
                what = (f"this refit was not registered; the registered forecast ({what}) said "
                        f"{_num(reg['value'])} {_band(reg['interval'])}")
            lines.append(f"          {what}")
    a = s["actual"]
    if a["value"] is None:
        lines.append("actual    not measured yet")
    else:
        where = {True: "inside the interval", False: "OUTSIDE the interval", None: ""}[a["inside_interval"]]
        lines.append(f"actual    {_num(a['value'])} {where}".rstrip())
    loss = s["loss"]
    if loss.get("error"):
        lines.append(f"loss      none: {loss['error']}")
    else:
        lines.append(f"loss      {loss['quantity']} {_num(loss['value'])} {_band(loss['interval'])}"
                     + (f"; actual {_num(loss['actual'])}" if loss.get("actual") is not None else ""))
    if s["checkpoints"]:
        cells = [f"{c['name']}{' (target)' if c['is_target'] else ''} {_num(c['pass@1'], '.3f')}"
                 for c in s["checkpoints"]]
        lines.append("pass@1    " + ", ".join(cells))
    b = s["backtest"]
    if b.get("error"):
        lines.append(f"backtest  none: {b['error']}")
    elif b.get("scored"):
        lines.append(f"backtest  {b['method']}: interval covered the held-out actual in {b['coverage']:.0%} of "
                     f"{b['scored']} forecasts (nominal {_num(b['level'], '.0%')}), median |error| "
                     f"{_num(b['median_abs_error'], '.2g')} in mean log pass rate")
    else:
        lines.append(f"backtest  {b.get('method')}: no forecast could be scored")
    lines.append(f"report    {s['report'] or 'not written'}")
    return "\n".join(lines)
