"""Run-directory fixtures around a simulated family: a manifest.json as `capforecast run` writes it."""
from __future__ import annotations

from pathlib import Path

from pipeline.config import Family
from pipeline.rundir import RunDir
from pipeline.rundir.manifest import Manifest, ProblemSet

from simulated.family import TARGET_NAME, SimulatedFamily


def family_of(computes: dict[str, float], target: str | tuple[str, float], *, fit: dict | None = None,
              sampling: dict | None = None, loss: dict | None = None, model: str = "org/sim-model",
              name: str = "sim") -> Family:
    """A family config with these checkpoints (name -> FLOPs) and a target: one of them, or (name, FLOPs)."""
    return Family.model_validate({
        "name": name, "fit": fit or {}, "sampling": sampling or {}, "loss": loss or {},
        "target": target if isinstance(target, str) else {"name": target[0], "compute": target[1]},
        "checkpoints": [{"name": c, "model": model, "flops": float(x)} for c, x in computes.items()]})


def write_manifest_for(run_dir: Path, family: Family, problems: int = 0, problems_path: str = "sim.jsonl") -> Manifest:
    """Write RUN_DIR/manifest.json as `capforecast run` starts it for ``family``; returns it."""
    manifest = Manifest.start(family, Path("checkpoints.yaml"),
                              ProblemSet(path=problems_path, digest="0" * 64, count=problems))
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    RunDir(run_dir).write_manifest(manifest)
    return manifest


def sim_manifest(fam: SimulatedFamily, **settings) -> Manifest:
    """The manifest of a run of a simulated family (its target at its target compute)."""
    family = family_of(dict(zip(fam.checkpoints, map(float, fam.compute))), (TARGET_NAME, fam.target_compute),
                       **settings)
    return Manifest.start(family, Path("checkpoints.yaml"),
                          ProblemSet(path="sim.jsonl", digest="0" * 64, count=len(fam.task_ids)))


def write_sim_manifest(run_dir: Path, fam: SimulatedFamily, **settings) -> Manifest:
    """Write RUN_DIR/manifest.json for a simulated family; returns it."""
    manifest = sim_manifest(fam, **settings)
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    RunDir(run_dir).write_manifest(manifest)
    return manifest
