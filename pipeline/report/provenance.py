"""The provenance table: where a run's numbers came from (digests, code, engine/device, sandbox, limits)."""
from __future__ import annotations

from pipeline.report.document import Table, fmt
from pipeline.report.inputs import RunInputs
from pipeline.rundir import RunDir

SHOWN = [("family", "family"), ("created_at", "created (UTC)"), ("config_digest", "config digest (sha256)"),
         ("config_path", "config file"), ("problems.digest", "problem-set digest (sha256)"),
         ("problems.count", "problems"), ("problems.path", "problem file")]
HANDLED = {"version", "family", "created_at", "config_digest", "config_path", "problems", "code_version", "sandbox",
           "generation", "packages", "stages", "checkpoints", "family_config", "target"}


def _dig(data, dotted: str):
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def brief(value, limit: int = 200) -> str:
    """A dict or list as 'k=v, …' text, cut at ``limit`` characters."""
    if isinstance(value, dict):
        text = ", ".join(f"{k}={brief(v, 80)}" for k, v in value.items())
    elif isinstance(value, list):
        text = ", ".join(brief(v, 80) for v in value)
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def engine_text(engine: dict) -> str:
    """'transformers 5.24.0 (torch 2.13.0+cpu) on cpu, float32' from a generation summary's engine."""
    text = " ".join(str(engine[k]) for k in ("name", "version") if engine.get(k))
    if engine.get("torch"):
        text += f" (torch {engine['torch']})"
    if engine.get("device"):
        text += f" on {engine['device']}"
    if engine.get("dtype"):
        text += f", {engine['dtype']}"
    return text or brief(engine)


def _generation_rows(generation: dict) -> list[list[str]]:
    engines: dict[str, list[str]] = {}
    work = []
    for name, gen in generation.items():
        engines.setdefault(engine_text(gen.engine), []).append(name)
        work.append(f"{name}: {gen.generated} samples in {fmt(gen.seconds, 3)} s")
    rows = [["generation engine", text if len(engines) == 1 else f"{text} ({', '.join(names)})"]
            for text, names in engines.items()]
    if work:
        rows.append(["generated this run", "; ".join(work)])
    return rows


def _sandbox_rows(sandbox) -> list[list[str]]:
    rows = [["sandbox backend", sandbox.backend]]
    if sandbox.limits:
        rows.append(["sandbox limits", brief(sandbox.limits, 400)])
    values = list(sandbox.calibrated_cpu_seconds.values())
    if values:
        rows.append(["calibrated CPU limits", f"{fmt(min(values))}–{fmt(max(values))} s per program "
                                              f"over {len(values)} problems"])
    return rows


def provenance_table(run: RunInputs) -> Table:
    """Where the numbers came from: digests, code version, engine/device, sandbox and its limits."""
    manifest = run.manifest
    if manifest is None:
        return Table("Provenance", ["item", "value"], [[RunDir.MANIFEST, "missing: provenance unknown"]],
                     slug="provenance")
    m = manifest.to_json()
    rows = [[label, brief(_dig(m, key))] for key, label in SHOWN if _dig(m, key) is not None]
    rows.append(["code version", " ".join(f"{k} {v}" for k, v in manifest.code_version.items())])
    if manifest.generation:
        rows += _generation_rows(manifest.generation)
    if manifest.sandbox:
        rows += _sandbox_rows(manifest.sandbox)
    if manifest.packages:
        rows.append(["packages", brief(manifest.packages, 600)])
    if manifest.stages:
        total = sum(s.seconds for s in manifest.stages.values())
        rows.append(["stage time", f"{fmt(total, 3)} s over {len(manifest.stages)} stages"])
    rows += [[key, brief(m[key])] for key in sorted(set(m) - HANDLED)]
    return Table("Provenance", ["item", "value"], rows, slug="provenance")
