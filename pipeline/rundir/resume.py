"""Coming back to a run directory: the latest unfinished run of a family, and the digests that tell a finished
stage (same inputs, output present) from one with work to do.

Plumbing for ``pipeline.run``: imports only plumbing, config and the manifest.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, is_dataclass
from pathlib import Path

from pipeline.errors import UserError


def inputs_digest(*sources) -> str:
    """sha256 over files (their bytes; a folder: every file in it but lock files, by relative path) and plain
    values (JSON, dataclasses as dicts); a missing file counts as absent, not as an error."""
    h = hashlib.sha256()
    for source in sources:
        if isinstance(source, Path):
            files = (sorted(p for p in source.rglob("*") if p.is_file() and p.suffix != ".lock")   # not lock files
                     if source.is_dir() else [source])
            for f in files:
                h.update(str(f.relative_to(source) if source.is_dir() else f.name).encode())
                h.update(f.read_bytes() if f.is_file() else b"\0absent")
        else:
            value = asdict(source) if is_dataclass(source) else source
            h.update(json.dumps(value, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()


def latest_unfinished(results: Path, family, problems_digest: str, limit: int | None) -> tuple[Path, str] | None:
    """(path, created_at) of the newest run directory under ``results`` made from this family's config and
    problems (and --limit) that did not get to its end; None when there is none."""
    from pipeline.rundir import RunDir

    candidates = []
    for path in Path(results).glob(f"{family.name}-*") if Path(results).is_dir() else []:
        run = RunDir(path)
        if not run.has_manifest():
            continue
        try:
            manifest = run.read_manifest()
        except UserError:
            continue
        if (manifest.config_digest, manifest.problems.digest, manifest.problems.limit) == (
                family.digest(), problems_digest, limit) and not manifest.finished():
            candidates.append((manifest.created_at, str(path)))
    if not candidates:
        return None
    created, path = max(candidates)
    return Path(path), created


SKIPPED = object()


def run_stage(manifest, run, stage: str, inputs: str, output: Path, fn, *args, log):
    """fn(*args) timed and recorded in the manifest with its inputs' digest; SKIPPED, doing nothing and recording
    nothing, when the manifest says the stage finished on the same inputs and its output is there; ``log`` gets
    the line that says so."""
    import time

    done = manifest.stages.get(stage)
    if done is not None and done.inputs == inputs and Path(output).exists():
        log(f"{stage}: finished before on the same inputs ({done.finished_at}); nothing to do")
        return SKIPPED
    start = time.perf_counter()
    result = fn(*args)
    manifest.record_stage(stage, time.perf_counter() - start, inputs=inputs)
    run.write_manifest(manifest)
    return result
