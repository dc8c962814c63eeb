"""Generate stage: sample completions for each checkpoint into ``samples/<checkpoint>.jsonl``, resumably.

A sample is keyed by (checkpoint@revision, task_id, sample_index) and seeded from that key
(``pipeline.generate.seeds``), so any subset can be drawn in any order, batch or shard and gives the same rows.
Work units are (checkpoint, task_id) pairs in config order; ``--shard I/N`` (or a Slurm array task)
takes the I-th contiguous block of N and writes ``samples/shards/<ckpt>.shard-I-of-N.jsonl``;
``merge_shards`` appends their rows to ``samples/<ckpt>.jsonl`` without duplicates.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from pipeline.arguments import one_run_dir, positive_int
from pipeline.config import DEFAULT_CONFIG, Checkpoint, Family
from pipeline.errors import UserError
from pipeline.records import JsonlAppender, atomic_write_json, read_json, read_jsonl, require_fields
from pipeline.rundir import RunDir
from pipeline.generate.seeds import sample_seed, settings_digest

SHARD_FILE = re.compile(r"^(?P<ckpt>.+)\.shard-(?P<i>\d+)-of-(?P<n>\d+)\.jsonl$")


def cut_at_stop(text: str, stop) -> str:
    """The text before the earliest occurrence of any stop sequence (all of it when none occurs)."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=len(text))
    return text[:cut]


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' with 0 <= I < N, as given to --shard."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match or not 0 <= int(match[1]) < int(match[2]):
        raise UserError(f"--shard: expected I/N with 0 <= I < N (e.g. 0/4), got {text!r}")
    return int(match[1]), int(match[2])


def shard_from_env(env=os.environ) -> tuple[int, int] | None:
    """The shard of a Slurm array task (SLURM_ARRAY_TASK_ID relative to _MIN, of _COUNT), else None."""
    if "SLURM_ARRAY_TASK_ID" not in env or "SLURM_ARRAY_TASK_COUNT" not in env:
        return None
    index = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", 0))
    return parse_shard(f"{index}/{env['SLURM_ARRAY_TASK_COUNT']}")


def shard_block(items: list, shard: tuple[int, int] | None) -> list:
    """The I-th of N contiguous, near-equal blocks of items (all of them without a shard)."""
    if shard is None:
        return list(items)
    i, n = shard
    return list(items[i * len(items) // n:(i + 1) * len(items) // n])


def family_settings(family: Family, checkpoint: Checkpoint) -> str:
    """Digest of what shapes a completion besides its seed; rows from other settings are refused on resume."""
    s = family.sampling
    return settings_digest(model=checkpoint.model, revision=checkpoint.revision, backend=s.backend,
                           temperature=s.temperature, top_p=s.top_p, max_new_tokens=s.max_new_tokens,
                           stop=list(s.stop), seed=s.seed)


def existing_rows(out_path: Path, checkpoint: str) -> list[tuple[Path, int, dict]]:
    """Every row already on disk for this checkpoint: out_path, the merged file and all shard files."""
    paths = RunDir.samples_beside(out_path, checkpoint)
    rows = []
    for path in sorted(p for p in paths if p.exists()):
        for number, row in read_jsonl(path):
            require_fields(path, number, row, {"task_id": str, "sample_index": int, "seed": int})
            rows.append((path, number, row))
    return rows


def generate_checkpoint(family: Family, checkpoint: Checkpoint, problems: dict[str, dict], out_path: Path,
                        *, requests: dict[str, int] | None = None, shard: tuple[int, int] | None = None) -> dict:
    """Append the missing samples of one checkpoint to out_path; return a summary with the engine info. One
    process at a time writes out_path (a second is refused at once, naming the first: pipeline.lock)."""
    from pipeline.lock import WriterLock

    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    with WriterLock(Path(out_path), f"samples file {out_path}"):
        return _generate_checkpoint(family, checkpoint, problems, out_path, requests=requests, shard=shard)


def _generate_checkpoint(family: Family, checkpoint: Checkpoint, problems: dict[str, dict], out_path: Path,
                         *, requests: dict[str, int] | None, shard: tuple[int, int] | None) -> dict:
    from pipeline.generate.backends import SamplingOptions, describe_engine, load_backend
    from pipeline.progress import progress

    out_path, s = Path(out_path), family.sampling
    wanted = requests if requests is not None else {task: s.n for task in problems}
    unknown = [t for t in wanted if t not in problems]
    if unknown:
        raise UserError(f"requested task_id(s) not in the problem set: {', '.join(unknown[:5])}")
    tasks = shard_block([t for t in problems if t in wanted], shard)
    digest = family_settings(family, checkpoint)
    done = set()
    for path, number, row in existing_rows(out_path, checkpoint.name):
        expected = sample_seed(checkpoint.name, checkpoint.revision, row["task_id"], row["sample_index"], s.seed)
        if row["seed"] != expected or row.get("settings", digest) != digest:
            raise UserError(f"{path}, line {number}: sample ({row['task_id']}, {row['sample_index']}) was drawn "
                            f"with other settings (seed or sampling config differ from {family.name}/"
                            f"{checkpoint.name} now); write to a new --out directory")
        done.add((row["task_id"], row["sample_index"]))
    todo = [(t, i) for t in tasks for i in range(wanted[t]) if (t, i) not in done]
    options = SamplingOptions(temperature=s.temperature, top_p=s.top_p, max_new_tokens=s.max_new_tokens,
                              stop=tuple(s.stop), batch_size=s.batch_size, dtype=s.dtype,
                              tensor_parallel_size=s.tensor_parallel_size)
    summary = {"checkpoint": checkpoint.name, "revision": checkpoint.revision, "path": str(out_path),
               "shard": list(shard) if shard else None, "requested": sum(wanted[t] for t in tasks),
               "existing": sum(wanted[t] for t in tasks) - len(todo), "generated": 0, "tokens": 0,
               "seconds": 0.0, "settings": digest}
    if not todo:
        summary["engine"] = describe_engine(s.backend, options)
        return summary
    start = time.perf_counter()
    backend = load_backend(s.backend, family.model_location(checkpoint), options, revision=checkpoint.revision)
    summary["engine"] = backend.engine_info()
    summary["load_seconds"] = round(time.perf_counter() - start, 3)
    reqs = [_request(checkpoint, problems[t], i, s.seed) for t, i in todo]
    bar = progress(total=len(reqs), desc=f"generate {checkpoint.name}", unit="sample")
    with JsonlAppender(out_path) as out, bar:
        for results in backend.generate(reqs):
            for req, comp in results:
                out.write({"task_id": req.task_id, "completion": cut_at_stop(comp.text, s.stop),
                           "checkpoint": checkpoint.name, "sample_index": req.sample_index, "seed": req.seed,
                           "revision": checkpoint.revision, "raw_completion": comp.text,
                           "finish_reason": comp.finish_reason, "n_tokens": comp.n_tokens,
                           "prompt_tokens": comp.prompt_tokens, "settings": digest})
                summary["tokens"] += comp.n_tokens
            summary["generated"] += len(results)
            bar.update(len(results))
    summary["seconds"] = round(time.perf_counter() - start, 3)
    summary["samples_per_second"] = round(summary["generated"] / max(summary["seconds"], 1e-9), 3)
    return summary


def _request(checkpoint: Checkpoint, problem: dict, index: int, base_seed: int):
    from pipeline.generate.backends import Request

    seed = sample_seed(checkpoint.name, checkpoint.revision, problem["task_id"], index, base_seed)
    return Request(problem["task_id"], index, problem["prompt"], seed)


def merge_shards(out_dir: str | Path, checkpoints: list[str] | None = None) -> dict[str, int]:
    """Append shard rows missing from ``samples/<ckpt>.jsonl`` (keyed by task_id, sample_index), then
    delete the shard files. Run it only after every shard has finished; returns rows added per checkpoint."""
    run = RunDir(out_dir)
    groups: dict[str, list[Path]] = {}
    for path in run.shard_files():
        match = SHARD_FILE.match(path.name)
        if match and (checkpoints is None or match["ckpt"] in checkpoints):
            groups.setdefault(match["ckpt"], []).append(path)
    added = {}
    for ckpt, paths in groups.items():
        merged = run.samples(ckpt)
        seen = {(r["task_id"], r["sample_index"]) for _, r in read_jsonl(merged)} if merged.exists() else set()
        added[ckpt] = 0
        with JsonlAppender(merged) as out:
            for path in paths:
                for number, row in read_jsonl(path):
                    require_fields(path, number, row, {"task_id": str, "sample_index": int})
                    key = (row["task_id"], row["sample_index"])
                    if key not in seen:
                        seen.add(key)
                        out.write(row)
                        added[ckpt] += 1
        for path in paths:
            path.unlink()
    if run.shards_dir.is_dir() and not any(run.shards_dir.iterdir()):
        run.shards_dir.rmdir()
    return added


def read_plan(path: str | Path) -> dict[str, dict[str, int]]:
    """A plan file's requests as {checkpoint: {task_id: n_total}}; errors name the file and entry."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: plan file not found")
    plan = read_json(path)
    if not isinstance(plan, dict) or not isinstance(plan.get("requests"), list):
        raise UserError(f"{path}: expected an object with a 'requests' list")
    out: dict[str, dict[str, int]] = {}
    for i, req in enumerate(plan["requests"]):
        ok = isinstance(req, dict) and isinstance(req.get("checkpoint"), str) and isinstance(req.get("task_id"), str)
        n = req.get("n_total") if isinstance(req, dict) else None
        if not ok or not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise UserError(f"{path}, field requests[{i}]: need 'checkpoint' and 'task_id' strings and "
                            f"'n_total' a non-negative integer, got {req!r}")
        per = out.setdefault(req["checkpoint"], {})
        per[req["task_id"]] = max(per.get(req["task_id"], 0), n)
    return out


def generate_family(family: Family, out_dir: str | Path, *, checkpoints: list[str] | None = None,
                    shard: tuple[int, int] | None = None, plan: dict[str, dict[str, int]] | None = None,
                    limit: int | None = None) -> list[dict]:
    """Generate every (checkpoint, task) unit of this shard (of the first ``limit`` problems); one summary per
    checkpoint touched."""
    from pipeline.problems import load_problems, resolve_benchmark

    problems = load_problems(resolve_benchmark(family.benchmark, family.base_dir), limit)
    chosen = [family.checkpoint(name) for name in checkpoints] if checkpoints else list(family.checkpoints)
    if plan is not None:
        for name in plan:
            family.checkpoint(name)  # unknown names are a user error
        chosen = [c for c in chosen if c.name in plan]
    wanted = {c.name: (plan[c.name] if plan is not None else {t: family.sampling.n for t in problems}) for c in chosen}
    units = [(c.name, t) for c in chosen for t in problems if t in wanted[c.name]]
    mine = shard_block(units, shard)
    summaries = []
    for ckpt in chosen:
        tasks = {t: wanted[ckpt.name][t] for name, t in mine if name == ckpt.name}
        if not tasks:
            continue
        out_path = RunDir(out_dir).samples(ckpt.name, shard)
        summary = generate_checkpoint(family, ckpt, problems, out_path, requests=tasks)
        summary["shard"] = list(shard) if shard else None
        stem = out_path.name.removesuffix(".jsonl")
        atomic_write_json(RunDir(out_dir).generation_summary(stem), summary)
        summaries.append(summary)
    return summaries


def register(subparsers) -> None:
    parser = subparsers.add_parser("generate", help="sample completions for a family's checkpoints (resumable)",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", nargs="?", metavar="RUN_DIR",
                        help="run directory; samples go to RUN_DIR/samples/<checkpoint>.jsonl (or give --out)")
    parser.add_argument("--config", default=DEFAULT_CONFIG,
                        help="checkpoints.yaml (default: ./checkpoints.yaml, else the packaged reference family)")
    parser.add_argument("--family", help="family name (default: the file's default_family, else the first)")
    parser.add_argument("--out", default=None, help="the run directory (same as RUN_DIR; the older spelling)")
    parser.add_argument("--limit", type=positive_int, default=None, metavar="N",
                        help="sample only the first N problems (a smoke run)")
    parser.add_argument("--checkpoint", action="append", help="only this checkpoint (repeatable)")
    parser.add_argument("--shard", help="I/N: the I-th of N contiguous blocks of (checkpoint, task) units; "
                                        "default: SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT when set")
    parser.add_argument("--plan", help="plan JSON from 'capforecast plan': draw sample indices 0..n_total-1 "
                                       "for its (checkpoint, task_id) requests only")
    parser.add_argument("--merge", action="store_true", help="only merge OUT/samples/shards/* into "
                                                             "OUT/samples/<checkpoint>.jsonl, then exit")
    parser.set_defaults(func=_main)


def _main(args) -> int:
    from pipeline.records import make_run_dir

    args.out = one_run_dir(args.run_dir, args.out)
    if args.out is None:
        raise UserError("give the run directory: capforecast generate RUN_DIR (or --out RUN_DIR)")
    make_run_dir(Path(args.out), "RUN_DIR")
    if args.merge:
        print(json.dumps({"merged": merge_shards(args.out, args.checkpoint)}))
        return 0
    from pipeline.config import load_config

    family = load_config(args.config).family(args.family)
    shard = parse_shard(args.shard) if args.shard else shard_from_env()
    plan = read_plan(args.plan) if args.plan else None
    for summary in generate_family(family, args.out, checkpoints=args.checkpoint, shard=shard, plan=plan,
                                   limit=args.limit):
        print(json.dumps(summary))
    return 0
