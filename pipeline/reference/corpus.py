"""The training corpus and the held-out loss corpus, drawn from the suite's task families.

Training documents draw operations Zipf-distributed (``suite.op_weights``), so rare operations
are learned later; instances are split by a hash of their key (``suite.partition``) into training, evaluation and
held-out, so the corpus never contains an evaluation instance, and the held-out loss corpus,
drawn from the same distribution, is in neither the training corpus nor the benchmark.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Iterator

from pipeline.reference.ops import OPS_BY_KIND
from pipeline.reference.suite import (OP_INDEX, Task, function_name, op_weights, partition,
                                      render_function, sample_step)

CORPUS_SEED = 1234
HELD_OUT_SEED = 4321
HELD_OUT_DOCUMENTS = 400
# Chain lengths in the training corpus, k = 1..8 (longer chains are rarer).
LENGTH_WEIGHTS = (0.28, 0.22, 0.16, 0.12, 0.08, 0.06, 0.045, 0.035)


class TaskSampler:
    """Draws tasks from the training distribution: Zipf over operations, LENGTH_WEIGHTS over lengths."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        weights = op_weights()
        self.keys = sorted(weights)
        self.weights = [weights[k] for k in self.keys]
        self.by_kind = {kind: ([k for k in self.keys if k[0] == kind], [weights[k] for k in self.keys if k[0] == kind])
                        for kind in OPS_BY_KIND}

    def task(self) -> Task:
        """One task: first operation from the global Zipf law, the rest from the same type's."""
        rng = self.rng
        length = rng.choices(range(1, len(LENGTH_WEIGHTS) + 1), LENGTH_WEIGHTS)[0]
        kind, first = rng.choices(self.keys, self.weights)[0]
        names = [first]
        keys, weights = self.by_kind[kind]
        names += [k[1] for k in rng.choices(keys, weights, k=length - 1)]
        return Task(kind, tuple(sample_step(rng, OP_INDEX[(kind, name)]) for name in names))

    def document(self, task: Task) -> str:
        """The function text a task renders to, under a random plain name."""
        prompt, body = render_function(task, function_name(self.rng, task.kind))
        return prompt + body


def training_documents(seed: int = CORPUS_SEED) -> Iterator[tuple[str, str]]:
    """Endless (key, text) training documents, from the "train" partition only."""
    sampler = TaskSampler(seed)
    while True:
        task = sampler.task()
        if partition(task.key) != "train":
            continue
        yield task.key, sampler.document(task)


def held_out_documents(count: int = HELD_OUT_DOCUMENTS, seed: int = HELD_OUT_SEED) -> list[dict]:
    """The held-out loss corpus: ``count`` documents of the "held_out" partition, as {"key", "text"} rows."""
    sampler = TaskSampler(seed)
    rows: list[dict] = []
    while len(rows) < count:
        task = sampler.task()
        if partition(task.key) == "held_out":
            rows.append({"key": task.key, "text": sampler.document(task)})
    return rows


def write_held_out(path: str | Path, rows: list[dict]) -> None:
    """Write the held-out corpus as JSONL with a "text" field (what ``pipeline.forecast.loss`` reads)."""
    Path(path).write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), encoding="utf-8")
