"""Progress bars for long stages: tqdm on a terminal, silent otherwise (CI, logs, pipes).

Usage in any stage::

    from pipeline.progress import progress

    for ckpt in progress(checkpoints, desc="generate"):
        ...
    bar = progress(total=len(samples), desc=f"execute {ckpt}", unit="sample")
    with bar:
        for outcome in pool.imap_unordered(...):
            bar.update(1)

When stderr is not a terminal (a Slurm log, a pipe), a bar becomes a plain line at most every
``LOG_INTERVAL_S`` seconds with counts, rate and ETA, so a long stage is never silent for minutes.
Set ``CAPFORECAST_PROGRESS=0`` to silence both, ``=1`` to force bars when stderr is not a terminal.
Bars and lines always go to stderr, so stdout stays clean for machine-readable output.
``quiet_third_party_bars()`` turns off the bars of Hugging Face libraries ("Loading weights"), which
would otherwise repeat once per checkpoint in every log.
"""
from __future__ import annotations

import os
import sys
import time
from datetime import datetime
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


LOG_INTERVAL_S = 10.0


def _silenced() -> bool:
    return os.environ.get(ENV_VAR, "").strip().lower() in ("0", "false", "no", "off")


def quiet_third_party_bars() -> None:
    """Hide transformers'/huggingface_hub's progress bars (unless the user set HF_HUB_DISABLE_PROGRESS_BARS)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] != "1":
        return
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


class LogProgress:
    """tqdm's interface (iterate, update, close, context manager) printing a line every ``interval`` seconds."""

    def __init__(self, iterable=None, total=None, desc=None, unit="it", file=None, interval=LOG_INTERVAL_S):
        self.iterable, self.desc, self.unit, self.file = iterable, desc or "progress", unit, file or sys.stderr
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.n, self.interval = 0, interval
        self.start = self.last = time.monotonic()

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)

    def update(self, n: float = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self.file.write(self.line(now) + "\n")
            self.file.flush()

    def line(self, now: float) -> str:
        elapsed = max(now - self.start, 1e-9)
        rate = self.n / elapsed
        done = f"{self.n:g}/{self.total:g} {self.unit}s ({self.n / self.total:.0%})" if self.total else \
            f"{self.n:g} {self.unit}s"
        eta = f", ETA {_duration((self.total - self.n) / rate)}" if self.total and rate > 0 else ""
        return (f"[capforecast {datetime.now():%H:%M:%S}] {self.desc}: {done}, {rate:.3g} {self.unit}/s, "
                f"{_duration(elapsed)} elapsed{eta}")

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def progress(
    iterable: Optional[Iterable[T]] = None,
    *,
    total: Optional[float] = None,
    desc: Optional[str] = None,
    unit: str = "it",
    leave: bool = False,
    **kwargs,
) -> "tqdm[T]":
    """A tqdm bar over ``iterable`` (or a manual bar with ``total``); periodic lines when stderr is not a TTY."""
    kwargs.setdefault("file", sys.stderr)
    if not progress_enabled(kwargs["file"]):
        if _silenced():
            return tqdm(iterable, total=total, disable=True)
        return LogProgress(iterable, total=total, desc=desc, unit=unit, file=kwargs["file"])
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
