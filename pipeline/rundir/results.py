"""The records stages write into a run directory and the report reads back: forecast.json, backtest.json,
loss.json, registered forecasts (forecasts/*.json) and their scores (forecasts/scores.json).

Producer and consumer live in this repository, so both sides go through these models: every writer validates
what it writes (a producer that drifts fails where it writes, in its own tests), every reader validates
what it reads, and an unknown, missing or mistyped field is an error naming the file and the field, never a
silent fallback. The readers return the validated JSON object, whose keys are exactly these models' fields.

To extend a record (say, a ``pass_at_k`` list in a prediction), add an optional field here and write it.
``law`` is the one open block: each fit method's own details (weights, folds, per-problem laws), whose
known fields are typed and whose others are kept as written.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

from pipeline.records import BadInput, atomic_write_json
from pipeline.rundir.jsonfile import read_json_object, validated

Interval = list[float]   # [lo, hi]
RECORD_KIND = "capforecast registered forecast/1"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- forecast.json

class Target(_Record):
    name: Optional[str] = None
    compute: Optional[float] = None


class Prediction(_Record):
    """A forecast value with its interval and, when the target's sample budget is known, what it will measure."""

    value: float
    interval: Interval
    level: float
    interval_kind: Optional[str] = None          # "forecast" (alternatives' predictions omit it)
    measurement_value: Optional[float] = None
    measurement_interval: Optional[Interval] = None
    measurement_n: Union[int, list[int], None] = None


class Actual(_Record):
    """The target's measured mean log pass rate on the forecast's problems that it solved."""

    value: Optional[float]
    n_problems: int
    unsolved_by_target: list[str]
    value_bias_corrected: Optional[float] = None
    prediction_on_same_problems: Optional[Prediction] = None
    note: Optional[str] = None


class Point(_Record):
    """One checkpoint's measured mean log pass rate over the fit's problems."""

    checkpoint: str
    compute: float
    normalized_compute: float
    n_problems: int
    used_in_fit: bool
    is_target: bool
    mean_log_pass_rate: Optional[float]
    interval: Optional[Interval] = None
    interval_resampling_problems: Optional[Interval] = None


class CurvePoint(_Record):
    normalized_compute: float
    compute: Optional[float] = None
    value: float
    interval: Interval


class Exclusion(_Record):
    kind: Literal["problem", "model"]
    id: str
    reason: str


class NegativeExponent(_Record):
    problems: list[str]
    share_of_forecast: Optional[float]
    note: Optional[str] = None


class PartForecast(_Record):
    """A forecast over part of the problems (a difficulty bucket, the hardest), or why there is none."""

    alpha: Optional[float] = None
    k: Optional[float] = None
    prediction: Optional[Prediction] = None
    curve: Optional[list[CurvePoint]] = None
    actual: Optional[Actual] = None
    error: Optional[str] = None


class Bucket(PartForecast):
    bucket: int
    problems: list[str]
    members: list[str]
    pass_rate_range: Interval
    not_qualifying: list[str]
    merged_from: Optional[list[int]] = None


class Hardest(PartForecast):
    count: int
    problems: list[str]
    qualifying: Optional[list[str]] = None


class Alternative(_Record):
    alpha: Optional[float] = None
    k: Optional[float] = None
    prediction: Optional[Prediction] = None
    error: Optional[str] = None


class LawDetails(BaseModel):
    """The fit method's own details; the fields the report reads are typed, the others kept as written."""

    model_config = ConfigDict(extra="allow")

    method: str
    problem_k: Optional[list[float]] = None
    problem_log_pass_rate_at_target: Optional[list[float]] = None
    departure_from_aggregate: Optional[dict[str, Any]] = None
    rolling: Optional[dict[str, Any]] = None


class Forecast(_Record):
    """forecast.json (and the ``forecast`` of a registered record); docs/forecasting.md has every field."""

    method: str
    target: Target
    alpha: float
    alpha_interval: Interval
    k: float
    k_interval: Interval
    problems: list[str]
    models: list[str]
    prediction: Prediction
    actual: Optional[Actual] = None
    points: list[Point]
    curve: list[CurvePoint]
    law: LawDetails
    excluded: list[Exclusion]
    non_monotone: list[str]
    negative_exponent: NegativeExponent
    warnings: list[str]
    buckets: list[Bucket]
    hardest_excluded: Hardest
    alternatives: Optional[dict[str, Alternative]] = None
    options: dict[str, Any]                      # pipeline.forecast.fit.FitOptions, every field
    settings_source: Optional[dict[str, str]] = None


class NoForecast(_Record):
    """forecast.json when no fit was possible: why, and for which target."""

    error: str
    target: Target
    method: Optional[str] = None
    options: Optional[dict[str, Any]] = None
    settings_source: Optional[dict[str, str]] = None


# ---------------------------------------------------------------- backtest.json

class BacktestRow(_Record):
    """One held-out checkpoint forecast by one method; ``error`` says why when it could not be scored."""

    holdout: int
    target: str
    method: str
    error: Optional[str] = None
    target_compute: Optional[float] = None
    extrapolation: Optional[float] = None
    n_problems: Optional[int] = None
    unsolved_by_target: Optional[int] = None
    prediction: Optional[float] = None
    interval: Optional[Interval] = None
    actual: Optional[float] = None
    measurement_value: Optional[float] = None
    measurement_interval: Optional[Interval] = None
    judged_by: Optional[Interval] = None
    covered_by: Optional[str] = None
    actual_se: Optional[float] = None
    signed_error: Optional[float] = None
    abs_error: Optional[float] = None
    relative_error: Optional[float] = None
    covered: Optional[bool] = None


class BacktestSummary(_Record):
    scored: int
    failed: int
    median_abs_error: Optional[float] = None
    median_relative_error: Optional[float] = None
    mean_signed_error: Optional[float] = None
    coverage: Optional[float] = None


class Backtest(_Record):
    rows: list[BacktestRow]
    summary: dict[str, BacktestSummary]
    options: dict[str, Any]                      # the FitOptions every fit of the backtest used
    methods: list[str]
    settings_source: Optional[dict[str, str]] = None


class Failed(_Record):
    """A stage's result file when the stage could not produce one (backtest.json, loss.json)."""
    error: str


# ---------------------------------------------------------------- loss.json

class LossPrediction(_Record):
    value: float
    interval: Optional[Interval]
    level: float
    interval_kind: str
    curve_interval: Optional[Interval] = None


class LossFitInfo(_Record):
    checkpoints: list[str]
    frontier_only: bool
    huber_delta: float
    log_residuals: list[float]
    rms_log_residual: float
    bootstrap: int
    resampled: str
    calibration: Optional[dict[str, Any]] = None
    identifiability: list[str]
    warnings: list[str]


class LossPoint(_Record):
    checkpoint: str
    compute: float
    mean_loss: float
    used_in_fit: bool
    tokens: Optional[int] = None


class LossActual(_Record):
    value: float


class Corpus(_Record):
    path: str
    documents: int
    digest: str


class Measurements(_Record):
    path: str
    rows: int


class Loss(_Record):
    """loss.json: the loss law L(C) = a * (C / C_target)**b + c and its forecast at the target."""

    target: Target
    law: str
    a: float
    a_interval: Optional[Interval] = None
    b: float
    b_interval: Optional[Interval] = None
    c: float
    c_interval: Optional[Interval] = None
    prediction: LossPrediction
    curve: Optional[list[CurvePoint]] = None      # the law and its band over the fitted range up to the target
    fit: LossFitInfo
    points: list[LossPoint]
    actual: Optional[LossActual] = None
    corpus: Optional[Corpus] = None
    options: Optional[dict[str, Any]] = None
    settings_source: Optional[dict[str, str]] = None
    measurements: Optional[Measurements] = None


# ---------------------------------------------------------------- forecasts/*.json and forecasts/scores.json

class RegistrationInputs(_Record):
    pass_counts: str
    pass_counts_sha256: str
    rows: int
    checkpoints: list[str]
    target_rows_removed: int


class TargetEvidence(_Record):
    pass_count_rows: int
    samples_rows: Optional[int] = None
    verdicts_rows: Optional[int] = None
    none: bool


class Registration(_Record):
    """An immutable registered forecast (pipeline.forecast.register)."""

    kind: Literal[RECORD_KIND]
    registered_at: str
    code_version: dict[str, str]
    inputs: RegistrationInputs
    target: Target
    target_evidence_at_registration: TargetEvidence
    forecast: Forecast


class RegisteredActual(_Record):
    value: Optional[float]
    problems_used: int
    unsolved_or_missing: list[str]


class Score(_Record):
    file: str
    sha256: str
    registered_at: str
    code_version: Optional[dict[str, str]] = None
    target: Target
    prediction: Prediction
    actual: Optional[RegisteredActual]
    registered_before_target_samples: Optional[bool]
    why: str
    signed_error: Optional[float] = None
    within_interval: Optional[bool] = None
    pass_rate_ratio: Optional[float] = None


class Scores(_Record):
    scored_at: str
    pass_counts: str
    scores: list[Score] = Field(default_factory=list)


# ---------------------------------------------------------------- reading and writing

def _one_of(data: dict, path: Path, *models: type[BaseModel]) -> dict:
    """Validate against the model whose shape the data has: the failure form (``error`` only) or the full one."""
    model = models[-1] if "error" in data and len(models) > 1 else models[0]
    validated(model, data, path)
    return data


def read_forecast(path: Path) -> dict:
    return _one_of(read_json_object(path), path, Forecast, NoForecast)


def read_backtest(path: Path) -> dict:
    return _one_of(read_json_object(path), path, Backtest, Failed)


def read_loss(path: Path) -> dict:
    return _one_of(read_json_object(path), path, Loss, Failed)


def read_registration(path: Path) -> dict:
    data = read_json_object(path)
    if data.get("kind") != RECORD_KIND:
        raise BadInput(f"{path}: field 'kind' is not {RECORD_KIND!r}; not a registered forecast")
    return _one_of(data, path, Registration)


def read_scores(path: Path) -> dict:
    return _one_of(read_json_object(path), path, Scores)


def _checked_write(path: Path, data: dict, *models: type[BaseModel]) -> None:
    """Write ``data`` as it is, after checking it has a record's shape (a producer bug fails here, loudly)."""
    path = Path(path)
    _one_of(data, path, *models)
    atomic_write_json(path, data)


def write_forecast(path: Path, forecast: dict) -> None:
    _checked_write(path, forecast, Forecast, NoForecast)


def write_backtest(path: Path, result: dict) -> None:
    _checked_write(path, result, Backtest, Failed)


def write_loss(path: Path, result: dict) -> None:
    _checked_write(path, result, Loss, Failed)


def write_scores(path: Path, scores: dict) -> None:
    _checked_write(path, scores, Scores)
