"""Per-problem CPU limits from the canonical solutions' runtimes: max(floor, factor x runtime), as EvalPlus does."""
from __future__ import annotations

from sandbox.api import Backend, Limits, Program

FLOOR_S = 0.25   # CPU seconds; 10x the slowest program that finished among 16,400 real CodeGen-16B samples
FACTOR = 20.0    # x the canonical solution's CPU time (slowest canonical: HumanEval/75, ~0.09 s -> 1.9 s)
CALIBRATION_CPU_S = 20.0  # generous budget while timing the canonical solutions


def canonical_programs(problems: dict, cpu_seconds: float = CALIBRATION_CPU_S) -> list[Program]:
    """One program per problem: prompt + canonical solution, under a generous CPU limit."""
    return [Program(id=task_id, candidate=p["prompt"] + p["canonical_solution"], test=p["test"],
                    entry_point=p["entry_point"], cpu_seconds=cpu_seconds, prompt=p["prompt"])
            for task_id, p in problems.items()]


def limit_rule(runtime_s: float, floor_s: float = FLOOR_S, factor: float = FACTOR) -> float:
    """The documented rule: a problem's CPU limit is max(floor, factor x canonical CPU time)."""
    return round(max(floor_s, factor * runtime_s), 3)


def calibrate_cpu_limits(problems: dict, backend: Backend, floor_s: float = FLOOR_S, factor: float = FACTOR,
                         repeats: int = 3) -> dict[str, float]:
    """task_id -> CPU limit; a canonical solution that does not pass raises, naming the task."""
    best: dict[str, float] = {}
    for _ in range(repeats):
        for outcome in backend.run(canonical_programs(problems)):
            if not outcome.passed:
                raise RuntimeError(f"canonical solution of {outcome.id} did not pass on {backend.name}: "
                                   f"{outcome.status} {outcome.detail}")
            runtime = float(outcome.extra.get("cpu_s", outcome.duration_s))
            best[outcome.id] = min(best.get(outcome.id, runtime), runtime)
    return {task_id: limit_rule(best[task_id], floor_s, factor) for task_id in problems}
