"""checkpoints.yaml: named model families, validated into one config object per family.

Every error names the file, the line and the field, e.g.
``checkpoints.yaml, line 14, field families.pythia.checkpoints[2].params: Input should be a valid integer``.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Literal, Optional, Union

import yaml

import sandbox
from sandbox.calibrate import FLOOR_S
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from pipeline.errors import UserError
from pipeline.records import read_text

CODEX_STOP = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"]
HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
DEFAULT_CONFIG = "checkpoints.yaml"
MIN_FIT_CHECKPOINTS = 3   # a law's two parameters and one degree of freedom: the least any fit is made from
PACKAGED_CONFIG = Path(__file__).resolve().parent / "reference" / "checkpoints.yaml"  # the reference family


def fit_exclusion(name: str, compute: float, target: str | None, target_compute: float,
                  fraction: float | None) -> str | None:
    """Why a checkpoint may not enter a fit that forecasts the target (None: it may): it is the target, its
    compute is not below the target's, or it is above ``fraction`` of it. The one rule for every law's fit."""
    if name == target:
        return "is the target (never used in the fit)"
    if compute >= target_compute:
        return "compute not below the target's"
    if fraction and compute > target_compute * fraction:
        return f"compute above {fraction:g} x target"
    return None


def default_config_path(path: str | Path = DEFAULT_CONFIG) -> Path:
    """``checkpoints.yaml`` in the current directory when there is one, else the reference family shipped
    with the package; any other path as given."""
    path = Path(path)
    if str(path) == DEFAULT_CONFIG and not path.exists():
        return PACKAGED_CONFIG
    return path


class ConfigError(UserError):
    """checkpoints.yaml is malformed; the message names file, line and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Checkpoint(_Strict):
    """One model of a family and its training compute."""

    name: str = Field(min_length=1)
    model: str = Field(min_length=1, description="Hugging Face id or local directory")
    revision: Optional[str] = None
    flops: Optional[float] = Field(default=None, gt=0)
    params: Optional[int] = Field(default=None, gt=0)
    tokens: Optional[int] = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _compute_given_once(self) -> "Checkpoint":
        if self.flops is None and (self.params is None or self.tokens is None):
            raise ValueError("give the training compute as 'flops', or as both 'params' and 'tokens'")
        if self.flops is not None and (self.params is not None or self.tokens is not None):
            raise ValueError("give either 'flops' or 'params' + 'tokens', not both")
        return self

    @property
    def compute(self) -> float:
        """Training FLOPs: as given, or C = 6 * params * tokens."""
        return float(self.flops) if self.flops is not None else 6.0 * self.params * self.tokens


class AdaptiveSettings(_Strict):
    """Adaptive (PassUntil) rounds instead of a fixed n: see pipeline/sampling/adaptive.py for each field."""

    pilot: int = Field(default=5, ge=0)
    r: int = Field(default=1, ge=1)
    budget: int = Field(default=2000, ge=1)
    round_size: int = Field(default=200, ge=1)
    samples_per_cell: float = Field(default=40.0, gt=0)
    max_rounds: int = Field(default=30, ge=1)


class Sampling(_Strict):
    n: int = Field(default=20, ge=1)
    temperature: float = Field(default=0.8, ge=0)
    top_p: float = Field(default=0.95, gt=0, le=1)
    max_new_tokens: int = Field(default=256, ge=1)
    stop: list[str] = Field(default_factory=lambda: list(CODEX_STOP))
    seed: int = 1234
    batch_size: int = Field(default=64, ge=1, description="sequences per generate call")
    backend: Literal["transformers", "vllm"] = "transformers"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    adaptive: Optional[AdaptiveSettings] = None
    tensor_parallel_size: int = Field(default=1, ge=1, description="vLLM: GPUs per checkpoint (large models)")


class SandboxSettings(_Strict):
    backend: str = "auto"

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        return sandbox.BACKENDS.check(value)

    workers: Optional[int] = Field(default=None, ge=1)
    cpu_seconds: float = Field(default=FLOOR_S, gt=0, description="CPU-s floor of max(floor, 20 x canonical)")
    wall_seconds: float = Field(default=10.0, gt=0)
    memory_mb: int = Field(default=1024, ge=64)
    calibrate: bool = Field(default=True, description="per-problem CPU limit from the canonical solution")


class FitSettings(_Strict):
    level: float = Field(default=0.9, gt=0, lt=1)
    method: str = Field(default="default", description="a name of pipeline.forecast.methods.METHODS, checked by "
                                                       "`run` before any compute (this layer does not know them)")
    max_fit_compute_fraction: Optional[float] = Field(default=None, gt=0, le=1)
    buckets: int = Field(default=6, ge=1)
    bootstrap: int = Field(default=1000, ge=1)


class LossSettings(_Strict):
    corpus: Optional[str] = None
    max_documents: Optional[int] = Field(default=None, ge=1)
    enabled: bool = True


class Target(_Strict):
    """The model to forecast: a checkpoint of the family, or a compute value."""

    checkpoint: Optional[str] = None
    compute: Optional[float] = Field(default=None, gt=0)
    name: Optional[str] = None

    @model_validator(mode="after")
    def _one_of(self) -> "Target":
        if (self.checkpoint is None) == (self.compute is None):
            raise ValueError("give exactly one of 'checkpoint' (a checkpoint name) or 'compute' (FLOPs)")
        return self


class Family(_Strict):
    """A family of checkpoints, its benchmark, sampling, sandbox, fit and target."""

    name: str = ""
    description: str = ""
    benchmark: str = "humaneval"
    sampling: Sampling = Field(default_factory=Sampling)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    fit: FitSettings = Field(default_factory=FitSettings)
    loss: LossSettings = Field(default_factory=LossSettings)
    target: Union[Target, str]
    checkpoints: list[Checkpoint] = Field(min_length=1)
    base_dir: str = Field(default=".", exclude=True)

    @field_validator("target", mode="before")
    @classmethod
    def _target_shorthand(cls, value):
        return {"checkpoint": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _names_unique_and_target_known(self) -> "Family":
        names = [c.name for c in self.checkpoints]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"checkpoint names must be unique; repeated: {', '.join(dupes)}")
        if self.target.checkpoint is not None and self.target.checkpoint not in names:
            raise ValueError(f"target checkpoint '{self.target.checkpoint}' is not one of the family's "
                             f"checkpoints ({', '.join(names)})")
        return self

    @property
    def target_name(self) -> str:
        return self.target.checkpoint or self.target.name or "target"

    @property
    def target_compute(self) -> float:
        if self.target.compute is not None:
            return float(self.target.compute)
        return self.checkpoint(self.target.checkpoint).compute

    def checkpoint(self, name: str) -> Checkpoint:
        for ckpt in self.checkpoints:
            if ckpt.name == name:
                return ckpt
        raise UserError(f"family '{self.name}' has no checkpoint '{name}'; "
                        f"choose one of: {', '.join(c.name for c in self.checkpoints)}")

    def resolve_path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else Path(self.base_dir) / path

    def model_location(self, ckpt: Checkpoint) -> str:
        """A local directory (absolute) or a Hugging Face id."""
        local = self.resolve_path(ckpt.model)
        if local.exists() or not HF_ID.match(ckpt.model):
            return str(local)
        return ckpt.model

    def forecast_problems(self) -> list[tuple[tuple, str]]:
        """What stops a forecast of this family's target, as (key path under the family, message) pairs:
        the target below the checkpoints, or fewer than 3 checkpoints below it (within the compute limit)."""
        target = self.target_compute
        others = [c for c in self.checkpoints if c.name != self.target.checkpoint]
        below = [c for c in others if c.compute < target]
        limit = self.fit.max_fit_compute_fraction
        usable = [c for c in others if fit_exclusion(c.name, c.compute, self.target.checkpoint, target, limit) is None]
        key = ("target",)
        if others and not below:
            return [(key, f"the target's compute ({target:.3g} FLOPs) is not above any checkpoint's (smallest "
                          f"{min(c.compute for c in others):.3g}); the forecast extrapolates up from smaller models")]
        if len(usable) < MIN_FIT_CHECKPOINTS:
            within = f" and within fit.max_fit_compute_fraction = {limit}" if limit is not None else ""
            return [(key, f"a forecast needs at least {MIN_FIT_CHECKPOINTS} checkpoints below the target"
                          f"{within}; this family has {len(usable)} ({', '.join(c.name for c in usable) or 'none'})")]
        return []

    def digest(self) -> str:
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()


class Config(_Strict):
    """The whole checkpoints.yaml."""

    default_family: Optional[str] = None
    families: dict[str, Family] = Field(min_length=1)
    path: str = Field(default=DEFAULT_CONFIG, exclude=True)
    _lines: dict = PrivateAttr(default_factory=dict)   # key path -> line, for messages after loading

    def family(self, name: str | None = None) -> Family:
        name = name or self.default_family or next(iter(self.families))
        if name not in self.families:
            raise ConfigError(f"{self.path}: unknown family '{name}'; the file defines: "
                              f"{', '.join(self.families)}")
        return self.families[name]


def field_error(config: Config, family: Family, key: tuple, message: str) -> ConfigError:
    """A ConfigError naming the file, the line and the field ``families.<family>.<key>``."""
    line = config._lines.get(("families", family.name) + tuple(key), "?")
    return ConfigError(f"{config.path}, line {line}, field families.{family.name}.{'.'.join(key)}: {message}")


def load_config(path: str | Path = DEFAULT_CONFIG, *, check_paths: bool = True) -> Config:
    """Read and validate a checkpoints.yaml; raise ConfigError naming file, line and field.

    The default name, ``checkpoints.yaml``, falls back to the packaged reference family when the current
    directory has none (``default_config_path``)."""
    path = default_config_path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found (pass --config PATH)")
    text = read_text(path, _yaml_key)
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    lines = _line_index(node)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}, line 1: expected a mapping with a 'families' key")
    base = str(path.resolve().parent)
    families = data.get("families")
    if isinstance(families, dict):
        for name, fam in families.items():
            if isinstance(fam, dict):
                fam.setdefault("name", str(name))
                fam["base_dir"] = base
    try:
        config = Config.model_validate({**data, "path": str(path)})
        config._lines = lines
    except ValidationError as exc:
        raise ConfigError(_describe(path, exc, lines)) from None
    if config.default_family and config.default_family not in config.families:
        raise ConfigError(f"{path}, line {lines.get(('default_family',), 1)}, field default_family: "
                          f"unknown family '{config.default_family}'")
    if check_paths:
        for fname, family in config.families.items():
            _check_paths(path, fname, family, lines)
    return config


def _yaml_key(line: str) -> str | None:
    """The key whose value holds the first undecodable byte (a surrogate) of a YAML line."""
    bad = next((i for i, ch in enumerate(line) if "\udc80" <= ch <= "\udcff"), len(line))
    keys = re.findall(r"([A-Za-z_][\w.-]*)\s*:", line[:bad])
    return keys[-1] if keys else None


def _check_paths(path: Path, fname: str, family: Family, lines: dict) -> None:
    for i, ckpt in enumerate(family.checkpoints):
        location = family.model_location(ckpt)
        if location.startswith("/") and not Path(location).is_dir():
            key = ("families", fname, "checkpoints", i, "model")
            raise ConfigError(f"{path}, line {lines.get(key, '?')}, field families.{fname}.checkpoints[{i}].model: "
                              f"model directory '{ckpt.model}' does not exist (resolved to {location}); "
                              f"give an existing local directory or a Hugging Face id like 'org/name'")
    if family.benchmark != "humaneval" and not family.resolve_path(family.benchmark).is_file():
        key = ("families", fname, "benchmark")
        raise ConfigError(f"{path}, line {lines.get(key, '?')}, field families.{fname}.benchmark: "
                          f"'{family.benchmark}' is neither 'humaneval' nor an existing JSONL/JSONL.GZ file")


def _line_index(node, prefix: tuple = ()) -> dict[tuple, int]:
    """Map each key path in a composed YAML tree to its 1-based line number."""
    index: dict[tuple, int] = {}
    if node is None:
        return index
    index[prefix] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = prefix + (key.value,)
            index.update(_line_index(value, path))
            index[path] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            index.update(_line_index(item, prefix + (i,)))
    return index


def _describe(path: Path, exc: ValidationError, lines: dict[tuple, int]) -> str:
    messages = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if p not in ("function-after[_compute_given_once()]",))
        loc = tuple(p for p in loc if not (isinstance(p, str) and p.startswith(("function-", "Target"))))
        line = next((lines[loc[:i]] for i in range(len(loc), -1, -1) if loc[:i] in lines), "?")
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see the README for the schema)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        messages.append(f"{path}, line {line}, field {field}: {msg}")
    return "\n".join(messages[:5]) + (f"\n(and {len(messages) - 5} more)" if len(messages) > 5 else "")
