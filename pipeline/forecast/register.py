"""Registered forecasts: an immutable record written before the target is evaluated, scored afterwards.

``capforecast forecast RUN_DIR`` fits on the pass counts of every checkpoint except the target (its
rows are removed if present) and writes ``forecasts/<UTC time>-<inputs digest>.json`` with O_EXCL and
mode 0444: never overwritten, never rewritten. ``capforecast score RUN_DIR`` compares every record
with the target's measured mean log pass rate on the record's own problems and writes
``forecasts/scores.json``.

"Registered before the target's samples existed" means all of: (1) at registration the run directory
held no samples, verdicts or pass counts of the target (checked and written into the record then);
(2) no target sample carries a ``generated_at`` earlier than the registration time; (3) the target's
samples file was last modified after the registration time. A record that fails (1) or (2) is
"after"; a record without the run directory's evidence (a bare CSV) is "unknown" unless (1) fails.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from pipeline.errors import UserError
from pipeline.records import PassCount, read_jsonl, read_pass_counts
from pipeline.rundir import RunDir
from pipeline.rundir.results import RECORD_KIND, Registration, read_registration, write_scores



def counts_digest(counts: list[PassCount]) -> str:
    """sha256 over the canonical CSV lines of the counts, sorted: the same rows give the same digest."""
    lines = sorted(f"{c.checkpoint},{c.compute!r},{c.task_id},{c.n},{c.passed}" for c in counts)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def target_evidence(run_dir: Path | None, target: str | None, counts: list[PassCount]) -> dict:
    """What of the target existed now: pass-count rows, and in a run directory its samples and verdicts."""
    out = {"pass_count_rows": sum(c.checkpoint == target for c in counts)}
    if run_dir is not None and target is not None:
        run = RunDir(run_dir)
        for kind, path in (("samples", run.samples(target)), ("verdicts", run.verdicts(target))):
            out[f"{kind}_rows"] = sum(1 for _ in read_jsonl(path)) if path.exists() else 0
    out["none"] = all(v == 0 for v in out.values())
    return out


def describe_evidence(evidence: dict) -> str:
    """'164 pass-count rows, 3280 samples, 3280 verdicts' for what of the target existed."""
    names = {"pass_count_rows": "pass-count rows", "samples_rows": "samples", "verdicts_rows": "verdicts"}
    parts = [f"{evidence[k]} {label}" for k, label in names.items() if evidence.get(k)]
    return ", ".join(parts) or "nothing"


def write_record(directory: Path, record: dict) -> Path:
    """Create forecasts/<time>-<digest>.json exclusively and read-only; refuse to overwrite anything."""
    from pipeline.rundir.jsonfile import validated

    directory.mkdir(parents=True, exist_ok=True)
    stamp = record["registered_at"].replace("-", "").replace(":", "").replace(".", "")
    path = directory / f"{stamp}-{record['inputs']['pass_counts_sha256'][:12]}.json"
    validated(Registration, record, path)   # the record's shape, before anything is written
    data = (json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    except FileExistsError:
        raise UserError(f"{path}: a registered forecast with this name exists; registered forecasts are never "
                        f"overwritten (register again to make a new record)") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(path, 0o444)
    return path


def register_forecast(run_dir: str | Path | None = None, counts_path: str | Path | None = None,
                      target: str | None = None, target_compute: float | None = None,
                      out_dir: str | Path | None = None, options=None, force: bool = False) -> Path:
    """Fit without the target's counts and write an immutable record under forecasts/; return its path.

    Refuses (UserError) when the target's samples, verdicts or pass counts already exist, unless ``force``:
    a forecast made then is not a pre-registration (the record still says what existed)."""
    from pipeline.forecast.capability import forecast_from_counts
    from pipeline.forecast.fit import FitOptions
    from pipeline.rundir.manifest import code_version

    run = RunDir(run_dir) if run_dir is not None else None
    manifest = run.read_manifest() if run is not None else None
    target = target or (manifest.target.name if manifest else None)
    target_compute = target_compute or (manifest.target.compute if manifest else None)
    counts_path = Path(counts_path) if counts_path else (run.pass_counts if run else None)
    if counts_path is None:
        raise UserError("give a run directory or --pass-counts FILE.csv")
    if target is None and target_compute is None:
        raise UserError(f"{counts_path}: no target named; pass --target NAME and/or --target-compute FLOPS")
    all_counts = read_pass_counts(counts_path)
    counts = [c for c in all_counts if c.checkpoint != target]
    if target_compute is None:
        target_compute = next((c.compute for c in all_counts if c.checkpoint == target), None)
        if target_compute is None:
            raise UserError(f"{counts_path}: target {target!r} has no rows; pass --target-compute FLOPS")
    if options is None:   # the run's own options, as for its forecast.json and backtest
        options = FitOptions.from_family(manifest.run_family()) if manifest else FitOptions()
    evidence = target_evidence(run_dir, target, all_counts)
    if not evidence["none"] and not force:
        raise UserError(f"{counts_path.parent if run_dir is None else run_dir}: the target {target!r} has already "
                        f"been evaluated ({describe_evidence(evidence)}), so a forecast registered now would not "
                        f"be a pre-registration; nothing was written. Pass --force to register it anyway (the "
                        f"record will say that the target's data existed)")
    now = datetime.now(timezone.utc)
    record = {
        "kind": RECORD_KIND,
        "registered_at": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "code_version": code_version(),
        "inputs": {"pass_counts": str(counts_path), "pass_counts_sha256": counts_digest(counts),
                   "rows": len(counts), "checkpoints": sorted({c.checkpoint for c in counts}),
                   "target_rows_removed": len(all_counts) - len(counts)},
        "target": {"name": target, "compute": float(target_compute)},
        "target_evidence_at_registration": evidence,
        "forecast": forecast_from_counts(counts, target, float(target_compute), options),
    }
    directory = Path(out_dir) if out_dir else (run or RunDir(counts_path.parent)).forecasts_dir
    return write_record(directory, record)


def actual_on(counts: list[PassCount], target: str, problems: list[str]) -> dict | None:
    """The target's E_P[log(c/n)] on the record's problems (those it solves; the rest are listed)."""
    from pipeline.forecast.estimate import mean_log_pass_rate

    rows = {c.task_id: c for c in counts if c.checkpoint == target}
    if not rows:
        return None
    solved = [p for p in problems if p in rows and rows[p].n > 0 and rows[p].passed > 0]
    missing = [p for p in problems if p not in solved]
    if not solved:
        return {"value": None, "problems_used": 0, "unsolved_or_missing": missing}
    value = float(mean_log_pass_rate(np.array([rows[p].passed for p in solved]), np.array([rows[p].n for p in solved])))
    return {"value": value, "problems_used": len(solved), "unsolved_or_missing": missing}


def first_sample_time(path: Path) -> str | None:
    """The earliest ``generated_at`` among the target's samples, when generation wrote one."""
    if not path.exists():
        return None
    stamps = []
    for number, row in read_jsonl(path):
        if "generated_at" in row:
            try:
                stamps.append((_time(row["generated_at"]), row["generated_at"]))
            except (TypeError, ValueError, AttributeError):
                raise UserError(f"{path}, line {number}: field 'generated_at' is not an ISO 8601 time, "
                                f"got {row['generated_at']!r}") from None
    return min(stamps)[1] if stamps else None


def registered_before(record: dict, run_dir: Path | None) -> tuple[bool | None, str]:
    """Whether the record predates the target's samples, with the reason (module docstring: the rule)."""
    evidence = record.get("target_evidence_at_registration", {})
    if not evidence.get("none", False):
        return False, f"the target's data already existed at registration ({describe_evidence(evidence)})"
    if run_dir is None or "samples_rows" not in evidence:
        return None, "registered from a bare CSV without the target's rows; no sample files to compare with"
    at = record["registered_at"]
    path = RunDir(run_dir).samples(record["target"]["name"])
    first = first_sample_time(path)
    if first is not None and _time(first) < _time(at):
        return False, f"a target sample was generated at {first}, before registration at {at}"
    if path.exists():
        mtime = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if _time(mtime) < _time(at):
            return False, f"{path} was last written at {mtime}, before registration at {at}"
    return True, "no target samples, verdicts or counts at registration" + (
        f"; first target sample generated at {first}" if first else "")


def _time(stamp: str) -> datetime:
    value = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def score_forecasts(run_dir: str | Path | None = None, counts_path: str | Path | None = None,
                    forecasts_dir: str | Path | None = None) -> dict:
    """Compare every registered record with the target's actual result; write forecasts/scores.json."""
    from pipeline.forecast.fit import judged_interval

    run_dir = Path(run_dir) if run_dir is not None else None
    counts_path = Path(counts_path) if counts_path else (RunDir(run_dir).pass_counts if run_dir else None)
    directory = Path(forecasts_dir) if forecasts_dir else RunDir(run_dir or counts_path.parent).forecasts_dir
    paths = RunDir.registered_in(directory)
    if not paths:
        raise UserError(f"{directory}: no registered forecasts; run `capforecast forecast` first")
    counts = read_pass_counts(counts_path)
    scores = []
    for path in paths:
        raw = path.read_bytes()
        record = read_registration(path)
        forecast, target = record["forecast"], record["target"]["name"]
        pred = forecast["prediction"]
        actual = actual_on(counts, target, forecast.get("problems", []))
        before, why = registered_before(record, run_dir)
        entry = {"file": path.name, "sha256": hashlib.sha256(raw).hexdigest(), "registered_at": record["registered_at"],
                 "code_version": record.get("code_version"), "target": record["target"], "prediction": pred,
                 "actual": actual, "registered_before_target_samples": before, "why": why}
        if actual and actual["value"] is not None:
            entry["signed_error"] = pred["value"] - actual["value"]   # prediction - actual, as backtest.json has it
            lo, hi = judged_interval(pred)
            entry["within_interval"] = bool(lo <= actual["value"] <= hi)
            entry["pass_rate_ratio"] = float(np.exp(-entry["signed_error"]))  # actual / predicted geometric-mean pass rate
        scores.append(entry)
    result = {"scored_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
              "pass_counts": str(counts_path), "scores": scores}
    write_scores(RunDir.scores_in(directory), result)
    return result


def score_line(s: dict) -> str:
    """One plain sentence per scored record."""
    pred = s["prediction"]
    value = s["actual"]["value"] if s["actual"] else None
    text = f"{s['file']}: predicted {pred['value']:.4f} [{pred['interval'][0]:.4f}, {pred['interval'][1]:.4f}]"
    if value is None:
        text += "; actual not measured yet"
    else:
        inside = "inside" if s.get("within_interval") else "OUTSIDE"
        text += f"; actual {value:.4f}, {inside} the interval (error {s['signed_error']:+.4f})"
    before = s["registered_before_target_samples"]
    claim = {True: "registered before the target's samples existed",
             False: "NOT a pre-registration", None: "registration time not checkable"}[before]
    return f"{text}; {claim}: {s['why']}"


def register(subparsers) -> None:
    fc = subparsers.add_parser("forecast", help="register an immutable forecast before the target is evaluated",
                               description=__doc__)
    fc.add_argument("run_dir", nargs="?", type=Path, help="run directory (pass_counts.csv, manifest.json)")
    fc.add_argument("--pass-counts", type=Path, help="a bare pass-counts CSV instead of a run directory")
    fc.add_argument("--target", default=None, help="target checkpoint name (its rows are left out of the fit)")
    fc.add_argument("--target-compute", type=float, default=None, help="target training FLOPs")
    fc.add_argument("--out", type=Path, default=None, help="forecasts directory (default: <run or CSV dir>/forecasts)")
    fc.add_argument("--force", action="store_true",
                    help="register even though the target's samples, verdicts or counts exist (not a "
                         "pre-registration; the record says so)")
    fc.set_defaults(func=_forecast_main)
    sc = subparsers.add_parser(
        "score", help="score registered forecasts against the target's actual result",
        description="Compare every registered forecast in forecasts/ with the target's measured mean log pass rate "
                    "on the record's own problems; say whether it was registered before the target's samples "
                    "existed; write forecasts/scores.json.")
    sc.add_argument("run_dir", nargs="?", type=Path, help="run directory (pass_counts.csv with the target's rows)")
    sc.add_argument("--pass-counts", type=Path, help="pass-counts CSV with the target's rows (instead of RUN_DIR)")
    sc.add_argument("--forecasts", type=Path, default=None, help="forecasts directory (default: beside the input)")
    sc.set_defaults(func=_score_main)


def _forecast_main(args) -> int:
    if args.run_dir is None and args.pass_counts is None:
        raise UserError("give a run directory or --pass-counts FILE.csv")
    path = register_forecast(args.run_dir, args.pass_counts, args.target, args.target_compute, args.out,
                             force=args.force)
    record = read_registration(path)
    pred = record["forecast"]["prediction"]
    evidence = record["target_evidence_at_registration"]
    print(f"registered {path}: E_P[log pass rate] at {record['target']['name']} = {pred['value']:.4f} "
          f"[{pred['interval'][0]:.4f}, {pred['interval'][1]:.4f}] ({pred.get('level', 0.9):.0%})", file=sys.stderr)
    if not evidence["none"]:
        print(f"warning: registered with --force after the target's data existed ({describe_evidence(evidence)}); "
              f"this is not a pre-registration", file=sys.stderr)
    print(path)
    return 0


def _score_main(args) -> int:
    if args.run_dir is None and args.pass_counts is None:
        raise UserError("give a run directory or --pass-counts FILE.csv")
    from pipeline.records import check_writable

    where = args.forecasts or RunDir(args.run_dir or args.pass_counts.parent).forecasts_dir
    if where.is_dir():
        check_writable(where, "--forecasts" if args.forecasts else "RUN_DIR")
    result = score_forecasts(args.run_dir, args.pass_counts, args.forecasts)
    for s in result["scores"]:
        print(score_line(s))
    print(f"wrote {RunDir.scores_in(where)}", file=sys.stderr)
    return 0
