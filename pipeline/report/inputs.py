"""Read everything a run directory holds, for the report: missing optional files become notes, not crashes;
a present file is read strictly (pipeline.rundir.results): an unknown or missing field is an error naming it."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import UserError
from pipeline.records import PassCount, read_jsonl, read_pass_counts
from pipeline.rundir import RunDir


@dataclass
class RunInputs:
    """The stored results of one run, as found on disk (None where a file is absent)."""

    run_dir: Path
    manifest: object = None                  # pipeline.rundir.manifest.Manifest
    counts: list[PassCount] = field(default_factory=list)
    forecast: dict | None = None             # each file as validated by pipeline.rundir.results
    loss: dict | None = None
    backtest: dict | None = None
    registered: list[dict] = field(default_factory=list)
    scores: dict | None = None
    statuses: dict[str, Counter] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    @property
    def forecast_error(self) -> str | None:
        """Why there is no forecast: the fit's own error message, or that forecast.json is absent."""
        if self.forecast is None:
            return f"{RunDir.FORECAST} is missing: the fit stage has not run (run `capforecast fit RUN_DIR`)"
        return self.forecast.get("error")

    @property
    def family(self) -> str:
        return self.manifest.family if self.manifest is not None else self.run_dir.name

    @property
    def target_name(self) -> str:
        """The target's name: from the forecast, else the manifest, else the loss law."""
        for target in self._targets():
            if target.get("name"):
                return str(target["name"])
        return "the target"

    @property
    def target_compute(self) -> float | None:
        for target in self._targets():
            if target.get("compute"):
                return float(target["compute"])
        return None

    def _targets(self) -> list[dict]:
        out = [self.forecast["target"]] if self.forecast else []
        if self.manifest is not None:
            out.append(self.manifest.target.model_dump())
        return out + ([self.loss["target"]] if self.loss and "target" in self.loss else [])


def _optional(path: Path, read, missing: list[str]):
    """``read(path)`` when the file exists, else None with its name noted as missing."""
    if not path.is_file():
        missing.append(path.name)
        return None
    return read(path)


def read_registered(run: RunDir) -> tuple[list[dict], dict | None]:
    """Registered forecasts (oldest first, each with its ``_file`` name) and their scores."""
    from pipeline.rundir.results import read_registration, read_scores

    forecasts = [{**read_registration(path), "_file": path.name} for path in run.registered()]
    forecasts.sort(key=lambda f: f["registered_at"])
    return forecasts, read_scores(run.scores) if run.scores.is_file() else None


def read_statuses(run: RunDir) -> dict[str, Counter]:
    """Verdict status counts per checkpoint from the verdicts files (the file stem names the checkpoint)."""
    out: dict[str, Counter] = {}
    for path in run.verdict_files():
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
    from pipeline.rundir.results import read_backtest, read_forecast, read_loss

    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise UserError(f"{run.path}: run directory not found (give the folder `capforecast run` created, "
                        f"e.g. results/<family>-<timestamp>)")
    inputs = RunInputs(run_dir=run.path)
    inputs.manifest = _optional(run.manifest, lambda _: run.read_manifest(), inputs.missing)
    inputs.counts = _optional(run.pass_counts, read_pass_counts, inputs.missing) or []
    inputs.forecast = _optional(run.forecast, read_forecast, inputs.missing)
    inputs.loss = _optional(run.loss, read_loss, inputs.missing)
    inputs.backtest = _optional(run.backtest, read_backtest, inputs.missing)
    inputs.registered, inputs.scores = read_registered(run)
    inputs.statuses = read_statuses(run)
    return inputs
