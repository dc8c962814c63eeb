"""``capforecast loss --measurements FILE.csv``: the loss law from a table of measured losses
(``checkpoint,compute,loss``, compute in raw FLOPs), as ``fit --pass-counts`` does for pass counts."""
from __future__ import annotations

import math
import sys
from pathlib import Path

from pipeline.arguments import layered
from pipeline.errors import UserError
from pipeline.records import BadInput, read_csv_rows
from pipeline.rundir.results import write_loss

COLUMNS = ("checkpoint", "compute", "loss")


def _positive(path: Path, line: int, field: str, text: str | None) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise BadInput(f"{path}, line {line}: field '{field}' is not a number ({text!r})") from None
    if not math.isfinite(value) or value <= 0:
        raise BadInput(f"{path}, line {line}: field '{field}' must be a positive finite number, got {text!r}")
    return value


def read_loss_measurements(path: str | Path) -> list[dict]:
    """Rows {checkpoint, compute, mean_loss, line} of a measurements CSV; every problem names file, line, field."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: measurements file not found (a CSV with columns {','.join(COLUMNS)})")
    header, reader = read_csv_rows(path)
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise BadInput(f"{path}, line 1: missing column(s) {', '.join(missing)}; the header must include "
                       f"{','.join(COLUMNS)} (compute in raw FLOPs, loss in nats per token)")
    rows, seen = [], {}
    for line, row in reader:
        name = (row.get("checkpoint") or "").strip()
        if not name:
            raise BadInput(f"{path}, line {line}: field 'checkpoint' is empty")
        if name in seen:
            raise BadInput(f"{path}, line {line}: checkpoint {name!r} appears again (first on line {seen[name]})")
        seen[name] = line
        rows.append({"checkpoint": name, "compute": _positive(path, line, "compute", row.get("compute")),
                     "mean_loss": _positive(path, line, "loss", row.get("loss")), "line": line})
    if not rows:
        raise UserError(f"{path}: no measurements (only a header)")
    return rows


def pick_target(rows: list[dict], target_compute: float | None, path: Path) -> tuple[str | None, float]:
    """(target checkpoint or None, target compute): the largest run unless --target-compute names another."""
    if target_compute is None:
        target_compute = max(r["compute"] for r in rows)
    elif not math.isfinite(target_compute) or target_compute <= 0:
        raise UserError(f"--target-compute must be a positive number of FLOPs, got {target_compute}")
    at = [r for r in rows if r["compute"] == target_compute]
    if len(at) > 1:
        raise UserError(f"{path}: {len(at)} runs have the target compute {target_compute:g} FLOPs "
                        f"({', '.join(r['checkpoint'] for r in at)}); pass --target-compute to pick another")
    return (at[0]["checkpoint"] if at else None), float(target_compute)


def loss_from_measurements(path: str | Path, target_compute: float | None, settings) -> dict:
    """The loss.json object for a measurements CSV (``settings``: a LossFitSettings)."""
    from pipeline.forecast.loss_forecast import loss_forecast_json

    if not 0 < settings.level < 1:
        raise UserError(f"--level must lie strictly between 0 and 1, got {settings.level}")
    if settings.bootstrap < 0:
        raise UserError(f"--bootstrap must be 0 or more, got {settings.bootstrap}")
    rows = read_loss_measurements(path)
    target, target_compute = pick_target(rows, target_compute, Path(path))
    result = loss_forecast_json([{k: r[k] for k in ("checkpoint", "compute", "mean_loss")} for r in rows],
                                target, target_compute, settings)
    result["measurements"] = {"path": str(path), "rows": len(rows)}
    return result


def print_summary(result: dict, out=None) -> None:
    """One line with the forecast and its prediction interval, then every warning and note."""
    out = out or sys.stderr
    pred, target = result["prediction"], result["target"]
    band = pred.get("interval")
    shown = f"[{band[0]:.4f}, {band[1]:.4f}] ({pred['level']:.0%} prediction interval)" if band else "(no interval)"
    name = target.get("name") or f"C = {target['compute']:.3g} FLOPs"
    fit = result["fit"]
    print(f"loss forecast for {name}: {pred['value']:.4f} {shown}"
          + (f"; actual {result['actual']['value']:.4f}" if "actual" in result else "")
          + f"; fitted on {len(fit['checkpoints'])} points", file=out)
    for warning in fit.get("warnings") or []:
        print(f"warning: {warning}", file=out)
    for note in fit.get("identifiability") or []:
        print(f"note: {note}", file=out)


def main_measurements(args) -> int:
    from pipeline.forecast.loss_forecast import LossFitSettings

    if args.measurements is None:
        raise UserError("--frontier and --target-compute work with --measurements FILE.csv only (a run directory "
                        "or config takes its target from the manifest or config)")
    if args.run_dir is not None or args.config is not None:
        raise UserError("give either --measurements FILE.csv or a run directory / --config, not both")
    if args.out is None:
        raise UserError("--out F.json is required with --measurements")
    given = {"bootstrap": args.bootstrap, "level": args.level, "seed": args.seed,
             "max_fit_compute_fraction": args.max_fit_compute_fraction, "frontier": args.frontier}
    settings = LossFitSettings(**layered(given, {})[0])
    result = loss_from_measurements(args.measurements, args.target_compute, settings)
    write_loss(Path(args.out), result)
    print_summary(result)
    return 0
