"""Read everything a run directory holds, for the report: missing optional files become notes, not crashes."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import UserError
from pipeline.records import BadInput, PassCount, read_jsonl, read_pass_counts

STATUSES = ("passed", "failed", "timed out", "out of memory", "crashed", "sandbox error")


@dataclass
class RunInputs:
    """The stored results of one run, as found on disk (None where a file is absent)."""

    run_dir: Path
    manifest: dict = field(default_factory=dict)
    counts: list[PassCount] = field(default_factory=list)
    forecast: dict | None = None
    loss: dict | None = None
    backtest: dict | None = None
    registered: list[dict] = field(default_factory=list)
    scores: dict | list | None = None
    statuses: dict[str, Counter] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    @property
    def forecast_error(self) -> str | None:
        """Why there is no forecast: the fit's own error message, or that forecast.json is absent."""
        if self.forecast is None:
            return "forecast.json is missing: the fit stage has not run (run `capforecast fit RUN_DIR`)"
        if "error" in self.forecast:
            return str(self.forecast["error"])
        if not isinstance(self.forecast.get("prediction"), dict):
            return "forecast.json has no 'prediction'"
        return None

    @property
    def family(self) -> str:
        return str(self.manifest.get("family") or self.manifest.get("name") or self.run_dir.name)

    @property
    def target_name(self) -> str:
        for source in (self.forecast or {}, self.manifest, self.loss or {}):
            target = source.get("target")
            if isinstance(target, dict) and (target.get("name") or target.get("checkpoint")):
                return str(target.get("name") or target.get("checkpoint"))
            if isinstance(target, str) and target:
                return target
        return "the target"

    @property
    def target_compute(self) -> float | None:
        for source in (self.forecast or {}, self.manifest, self.loss or {}):
            target = source.get("target")
            if isinstance(target, dict) and _positive(target.get("compute")):
                return float(target["compute"])
        by_name = {c.checkpoint: c.compute for c in self.counts}
        by_name.update({str(c.get("name")): c.get("compute") for c in self.checkpoints_in_manifest()})
        value = by_name.get(self.target_name)
        return float(value) if _positive(value) else None

    def checkpoints_in_manifest(self) -> list[dict]:
        rows = self.manifest.get("checkpoints")
        if isinstance(rows, dict):  # {name: {...}} form
            rows = [{"name": name, **(v if isinstance(v, dict) else {})} for name, v in rows.items()]
        return [r for r in rows or [] if isinstance(r, dict)]


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def read_json_file(path: Path):
    """Parse a JSON file; malformed JSON raises BadInput naming the file and line."""
    from pipeline.records import read_json

    return read_json(path)


def _optional_object(run_dir: Path, name: str, missing: list[str]) -> dict | None:
    path = run_dir / name
    if not path.is_file():
        missing.append(name)
        return None
    data = read_json_file(path)
    if isinstance(data, list):  # a bare list of rows (e.g. backtest.json) is read as {"rows": [...]}
        data = {"rows": data}
    if not isinstance(data, dict):
        raise BadInput(f"{path}, line 1: expected a JSON object, got {type(data).__name__}")
    return data


def read_registered(run_dir: Path) -> tuple[list[dict], dict | list | None]:
    """Registered forecasts (forecasts/*.json, oldest first) and their scores (forecasts/scores.json)."""
    folder = run_dir / "forecasts"
    if not folder.is_dir():
        return [], None
    forecasts, scores = [], None
    for path in sorted(folder.glob("*.json")):
        data = read_json_file(path)
        if path.name == "scores.json":
            scores = data
        elif isinstance(data, dict) and "error" not in data:
            forecasts.append({**data, "_file": path.name})
    forecasts.sort(key=lambda f: str(f.get("registered_at") or f.get("created_at") or f["_file"]))
    return forecasts, scores


def read_statuses(run_dir: Path) -> dict[str, Counter]:
    """Verdict status counts per checkpoint from verdicts/*.jsonl (the file stem names the checkpoint)."""
    folder = run_dir / "verdicts"
    out: dict[str, Counter] = {}
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.jsonl")):
        tally: Counter = Counter()
        name = None
        for _, row in read_jsonl(path):
            status = row.get("status")
            if not isinstance(status, str):
                status = "passed" if row.get("passed") is True else "unknown"
            tally[status] += 1
            name = row.get("checkpoint")
        out[str(name) if tally and name else path.stem] = tally
    return out


def load_run(run_dir: str | Path) -> RunInputs:
    """Everything the report needs from ``run_dir``; absent files are listed in ``missing``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: run directory not found (give the folder `capforecast run` created, "
                        f"e.g. results/<family>-<timestamp>)")
    run = RunInputs(run_dir=run_dir)
    run.manifest = _optional_object(run_dir, "manifest.json", run.missing) or {}
    if (run_dir / "pass_counts.csv").is_file():
        run.counts = read_pass_counts(run_dir / "pass_counts.csv")
    else:
        run.missing.append("pass_counts.csv")
    run.forecast = _optional_object(run_dir, "forecast.json", run.missing)
    run.loss = _optional_object(run_dir, "loss.json", run.missing)
    run.backtest = _optional_object(run_dir, "backtest.json", run.missing)
    run.registered, run.scores = read_registered(run_dir)
    run.statuses = read_statuses(run_dir)
    return run
