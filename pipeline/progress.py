"""Progress bars for long stages: tqdm on a terminal, silent otherwise (CI, logs, pipes).

Usage in any stage::

    from pipeline.progress import progress

    for ckpt in progress(checkpoints, desc="generate"):
        ...
    bar = progress(total=len(samples), desc=f"execute {ckpt}", unit="sample")
    with bar:
        for outcome in pool.imap_unordered(...):
            bar.update(1)

Set ``CAPFORECAST_PROGRESS=0`` to silence bars on a terminal, ``=1`` to force them when stderr
is not a terminal. Bars always go to stderr, so stdout stays clean for machine-readable output.
"""
from __future__ import annotations

import os
import sys
from typing import Iterable, Optional, TypeVar

from tqdm import tqdm

T = TypeVar("T")
ENV_VAR = "CAPFORECAST_PROGRESS"


def progress_enabled(stream=None) -> bool:
    """True when bars should be drawn: the env var decides if set, else whether stderr is a TTY."""
    setting = os.environ.get(ENV_VAR, "").strip().lower()
    if setting in ("0", "false", "no", "off"):
        return False
    if setting in ("1", "true", "yes", "on"):
        return True
    stream = stream if stream is not None else sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced stream
        return False


def progress(
    iterable: Optional[Iterable[T]] = None,
    *,
    total: Optional[float] = None,
    desc: Optional[str] = None,
    unit: str = "it",
    leave: bool = False,
    **kwargs,
) -> "tqdm[T]":
    """A tqdm bar over ``iterable`` (or a manual bar with ``total``), disabled when not wanted."""
    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("mininterval", 0.5)
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        leave=leave,
        disable=not progress_enabled(kwargs["file"]),
        **kwargs,
    )
