"""The reference benchmark: HumanEval-format tasks that chain k operations, graded by length and rarity.

A task applies k operations (``ops.py``) to one argument, in the order its docstring lists them.
Difficulty spreads over orders of magnitude in two ways: a chain passes only if every step is
right (pass rates fall roughly like p^k), and operations are Zipf-distributed in the training
corpus (``corpus.py``), so rare ones are learned only by bigger models. Evaluation tasks draw
operations uniformly, so rare operations weigh as much as common ones.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
from dataclasses import dataclass
from pathlib import Path

from pipeline.reference.ops import ALL_OPS, OPS_BY_KIND, VARIABLE, Op

SUITE_SEED = 20261126
SUITE_SIZE = 164
# How many evaluation tasks have each chain length k = 1..8.
LENGTH_COUNTS = {1: 28, 2: 28, 3: 26, 4: 24, 5: 20, 6: 16, 7: 12, 8: 10}
ZIPF_EXPONENT = 1.1
# Instances are split by a hash of their key: bucket 0 of 40 is the held-out loss corpus, the next
# EVAL_BUCKETS[k] buckets are reserved for evaluation (never trained on), the rest are training.
PARTITION_MODULUS = 40
EVAL_BUCKETS = {1: 12, 2: 4}  # short chains are few, so more of them are reserved; 2 buckets otherwise
MAX_LITERAL_CHARS = 60  # tests keep only tasks whose expected outputs print short

VERBS = ("transform", "process", "convert", "adjust", "reshape", "compute", "update", "rework", "shift", "mix")
NOUNS = {
    "int": ("number", "value", "count", "total", "amount", "score"),
    "str": ("text", "word", "string", "label", "name", "phrase"),
    "list": ("items", "values", "numbers", "data", "scores", "entries"),
}
WORDS = ("apple", "stone", "river", "tiger", "moon", "lemon", "cat", "robot", "north", "ice", "Delta", "Sam")

OP_INDEX = {(op.kind, op.name): op for op in ALL_OPS}


@dataclass(frozen=True)
class Task:
    """A chain of operations on one argument of type ``kind``; ``steps`` holds (op name, c, d)."""

    kind: str
    steps: tuple

    @property
    def key(self) -> str:
        """The instance's identity: two tasks with the same key have the same docstring and code."""
        return self.kind + "|" + ";".join(f"{name}:{c}:{d}" for name, c, d in self.steps)

    def lines(self) -> tuple[list[str], list[str]]:
        """The docstring clauses and code lines of the chain."""
        clauses, code = [], []
        for name, c, d in self.steps:
            clause, line = OP_INDEX[(self.kind, name)].render(c, d)
            clauses.append(clause)
            code.append(line)
        return clauses, code


def op_weights() -> dict[tuple[str, str], float]:
    """Zipf weights of every operation in the training corpus, over a fixed seeded ranking."""
    ranked = list(ALL_OPS)
    random.Random(SUITE_SEED).shuffle(ranked)
    return {(op.kind, op.name): 1.0 / (rank + 1) ** ZIPF_EXPONENT for rank, op in enumerate(ranked)}


def partition(key: str) -> str:
    """Which split an instance belongs to: "held_out", "eval" or "train" (fixed by its key's hash)."""
    bucket = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) % PARTITION_MODULUS
    length = key.count(";") + 1
    if bucket == 0:
        return "held_out"
    return "eval" if bucket <= EVAL_BUCKETS.get(length, 2) else "train"


def sample_step(rng: random.Random, op: Op) -> tuple:
    """An (op name, c, d) step with the op's constants drawn from ``rng``."""
    c = rng.choice(op.constants) if op.constants else None
    d = rng.choice([x for x in op.constants2 if x != c]) if op.constants2 else None
    return (op.name, c, d)


def function_name(rng: random.Random, kind: str) -> str:
    """A plain, meaningless function name (task identity lives in the docstring, not the name)."""
    return f"{rng.choice(VERBS)}_{rng.choice(NOUNS[kind])}"


def render_function(task: Task, name: str) -> tuple[str, str]:
    """The (prompt, body) of a task: signature and docstring, then the code lines and return."""
    var = VARIABLE[task.kind]
    clauses, code = task.lines()
    doc = ", then ".join(clauses) or "return the argument unchanged"
    prompt = f'def {name}({var}):\n    """{doc[0].upper()}{doc[1:]}."""\n'
    body = "".join(f"    {line}\n" for line in code) + f"    return {var}\n"
    return prompt, body


def run_chain(task: Task, value):
    """Apply the task to ``value`` in-process (trusted generator code, used to write the tests)."""
    _, body = render_function(task, "f")
    scope: dict = {}
    exec(f"def f({VARIABLE[task.kind]}):\n{body}", scope)  # our own canonical code, never model output
    return scope["f"](value)


def test_inputs(rng: random.Random, kind: str) -> list:
    """Five varied inputs of one type; the same generator for every task of that type."""
    if kind == "int":
        return [rng.randint(-40, 130) for _ in range(5)]
    if kind == "str":
        out = []
        for _ in range(5):
            words = rng.sample(WORDS, rng.randint(1, 3))
            out.append((" " if rng.random() < 0.3 else "") + " ".join(words) + (" " if rng.random() < 0.3 else ""))
        return out
    return [[rng.randint(-9, 20) for _ in range(rng.randint(2, 7))] for _ in range(5)]


def tests_every_step(task: Task, inputs: list) -> bool:
    """Whether dropping any one step changes some expected output (so each step is really tested)."""
    full = [run_chain(task, x) for x in inputs]
    for i in range(len(task.steps)):
        shorter = Task(task.kind, task.steps[:i] + task.steps[i + 1:])
        try:
            if [run_chain(shorter, x) for x in inputs] == full:
                return False
        except Exception:
            continue
    return len({repr(v) for v in full}) > 1


def make_problem(index: int, task: Task, name: str, inputs: list) -> dict:
    """A HumanEval-format problem for ``task``, its expected outputs computed by the canonical code."""
    prompt, body = render_function(task, name)
    asserts = "".join(f"    assert candidate({x!r}) == {run_chain(task, x)!r}\n" for x in inputs)
    return {
        "task_id": f"CapRef/{index}",
        "prompt": prompt,
        "canonical_solution": body,
        "test": f"\n\ndef check(candidate):\n{asserts}",
        "entry_point": name,
        "key": task.key,
        "length": len(task.steps),
    }


def build_suite(seed: int = SUITE_SEED) -> list[dict]:
    """The benchmark, deterministically from ``seed``: operations drawn uniformly, lengths per LENGTH_COUNTS."""
    rng = random.Random(seed)
    kinds = sorted(OPS_BY_KIND)
    problems, seen = [], set()
    for length, count in LENGTH_COUNTS.items():
        made = 0
        while made < count:
            kind = kinds[(len(problems)) % len(kinds)]
            task = Task(kind, tuple(sample_step(rng, rng.choice(OPS_BY_KIND[kind])) for _ in range(length)))
            inputs = test_inputs(rng, kind)
            if task.key in seen or partition(task.key) != "eval":
                continue
            try:
                outputs = [run_chain(task, x) for x in inputs]
            except Exception:
                continue
            if any(len(repr(v)) > MAX_LITERAL_CHARS for v in outputs) or not tests_every_step(task, inputs):
                continue
            seen.add(task.key)
            problems.append(make_problem(len(problems), task, function_name(rng, kind), inputs))
            made += 1
    return problems


def suite_bytes(problems: list[dict]) -> bytes:
    """The benchmark as deterministic gzip'd JSONL (no timestamp in the header)."""
    raw = "".join(json.dumps(p, sort_keys=True) + "\n" for p in problems).encode()
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw)
    return buf.getvalue()


def read_suite(path: str | Path) -> list[dict]:
    """Problems from a HumanEval-format JSONL.GZ file."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
