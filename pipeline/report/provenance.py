"""The provenance table: where a run's numbers came from (digests, code, engine/device, sandbox, limits)."""
from __future__ import annotations

from pipeline.report.document import Table, fmt
from pipeline.report.fields import number
from pipeline.report.inputs import RunInputs

SHOWN = [("family", "family"), ("created_at", "created (UTC)"), ("config_digest", "config digest (sha256)"),
         ("config_path", "config file"), ("problems.digest", "problem-set digest (sha256)"),
         ("problems.count", "problems"), ("problems.path", "problem file")]
HANDLED = {"family", "created_at", "config_digest", "config_path", "problems", "code_version", "sandbox",
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


def engine_text(gen: dict) -> str:
    """'transformers 5.24.0 (torch 2.13.0+cpu) on cpu, float32' from a generation summary."""
    engine = gen.get("engine")
    if isinstance(engine, dict):
        text = " ".join(str(engine[k]) for k in ("name", "version") if engine.get(k))
        if engine.get("torch"):
            text += f" (torch {engine['torch']})"
        if engine.get("device"):
            text += f" on {engine['device']}"
        if engine.get("dtype"):
            text += f", {engine['dtype']}"
        return text or brief(engine)
    parts = [str(gen[k]) for k in ("engine", "backend") if gen.get(k)]
    parts += [f"on {gen['device']}"] if gen.get("device") else []
    return " ".join(parts) or "—"


def _generation_rows(generation: dict) -> list[list[str]]:
    engines: dict[str, list[str]] = {}
    work = []
    for name, gen in generation.items():
        if not isinstance(gen, dict):
            continue
        engines.setdefault(engine_text(gen), []).append(str(name))
        made, seconds = number(gen.get("generated")), number(gen.get("seconds"))
        if made is not None:
            work.append(f"{name}: {int(made)} samples" + (f" in {fmt(seconds, 3)} s" if seconds is not None else ""))
    rows = [["generation engine", text if len(engines) == 1 else f"{text} ({', '.join(names)})"]
            for text, names in engines.items()]
    if work:
        rows.append(["generated this run", "; ".join(work)])
    return rows


def _sandbox_rows(sandbox: dict) -> list[list[str]]:
    rows = [["sandbox backend", str(sandbox.get("backend", "—"))]]
    if sandbox.get("limits"):
        rows.append(["sandbox limits", brief(sandbox["limits"], 400)])
    cpu = sandbox.get("calibrated_cpu_seconds")
    if isinstance(cpu, dict) and cpu:
        values = [v for v in (number(x) for x in cpu.values()) if v is not None]
        if values:
            rows.append(["calibrated CPU limits", f"{fmt(min(values))}–{fmt(max(values))} s per program "
                                                  f"over {len(values)} problems"])
    return rows


def provenance_table(run: RunInputs) -> Table:
    """Where the numbers came from: digests, code version, engine/device, sandbox and its limits."""
    m = run.manifest
    if not m:
        return Table("Provenance", ["item", "value"], [["manifest.json", "missing: provenance unknown"]],
                     slug="provenance")
    rows = [[label, brief(_dig(m, key))] for key, label in SHOWN if _dig(m, key) is not None]
    code = m.get("code_version")
    if isinstance(code, dict):
        rows.append(["code version", " ".join(f"{k} {v}" for k, v in code.items())])
    elif code is not None:
        rows.append(["code version", str(code)])
    if isinstance(m.get("generation"), dict):
        rows += _generation_rows(m["generation"])
    if isinstance(m.get("sandbox"), dict):
        rows += _sandbox_rows(m["sandbox"])
    if m.get("packages"):
        rows.append(["packages", brief(m["packages"], 600)])
    stages = m.get("stages")
    if isinstance(stages, dict) and stages:
        total = sum(number(s.get("seconds")) or 0 for s in stages.values() if isinstance(s, dict))
        rows.append(["stage time", f"{fmt(total, 3)} s over {len(stages)} stages"])
    rows += [[key, brief(m[key])] for key in sorted(set(m) - HANDLED)]
    return Table("Provenance", ["item", "value"], rows, slug="provenance")
