"""The ``docker`` backend (placeholder until the engine transport lands)."""
from __future__ import annotations


def availability() -> tuple[bool, str]:
    return False, "the docker backend is not built yet"
