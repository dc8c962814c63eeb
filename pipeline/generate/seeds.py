"""Per-sample identity and seeds: a sample is keyed by (checkpoint@revision, task_id, sample_index).

The seed is a 63-bit slice of a SHA-256 of that key (and the family's base seed), so it is stable across
machines and Python runs (never ``hash()``), and seeds of neighbouring samples are unrelated: vLLM gives
child i of ``SamplingParams(n, seed)`` the seed ``seed + i``, which consecutive base seeds would collide with.
"""
from __future__ import annotations

import hashlib
import json

SEED_BITS = 63


def checkpoint_identity(name: str, revision: str | None) -> str:
    """The checkpoint part of a sample key: ``name@revision`` (``name`` alone when no revision)."""
    return f"{name}@{revision}" if revision else name


def sample_key(checkpoint: str, revision: str | None, task_id: str, sample_index: int) -> str:
    """A canonical string naming one sample; unambiguous whatever characters the parts contain."""
    if isinstance(sample_index, bool) or not isinstance(sample_index, int) or sample_index < 0:
        raise ValueError(f"sample_index must be a non-negative integer, got {sample_index!r}")
    return json.dumps([checkpoint_identity(checkpoint, revision), task_id, sample_index], ensure_ascii=False)


def sample_seed(checkpoint: str, revision: str | None, task_id: str, sample_index: int, base_seed: int = 0) -> int:
    """The 63-bit seed of one sample, from a SHA-256 of its key and the family's base seed."""
    payload = f"capforecast-seed-v1\0{int(base_seed)}\0{sample_key(checkpoint, revision, task_id, sample_index)}"
    digest = hashlib.sha256(payload.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - SEED_BITS)


def settings_digest(**settings) -> str:
    """A short digest of everything besides the seed that shapes a completion (model, sampling, stops)."""
    payload = json.dumps(settings, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]
