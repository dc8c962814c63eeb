"""The executor's contract: programs in, outcomes out, one small Protocol per backend.

A backend runs untrusted candidate code against trusted test code. The verdict is
decided by the trusted side: a program passes only if ``check(entry_point)`` ran to
completion, never because of an exit code, stdout text or a file the candidate wrote.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable, Iterator, Protocol

# Statuses a backend may report. Anything but PASSED counts as not passed.
PASSED = "passed"
FAILED = "failed"              # assertion or exception in candidate or test
TIMED_OUT = "timed out"        # CPU-time or wall-clock limit hit
OUT_OF_MEMORY = "out of memory"
CRASHED = "crashed"            # killed by a signal (segfault, abort, ...), or killed its sandbox every time
SANDBOX_ERROR = "sandbox error"  # infrastructure fault the candidate did not cause, never silently a fail
STATUSES = (PASSED, FAILED, TIMED_OUT, OUT_OF_MEMORY, CRASHED, SANDBOX_ERROR)


@dataclass(frozen=True)
class Program:
    """One candidate to judge: ``candidate`` (prompt + completion) then ``test``, then ``check(entry_point)``.

    ``prompt`` (trusted, HumanEval's) is exec'd by the judge: the test's helpers come from it, and only the
    entry point from the candidate. Without it, every name the test lacks is looked up in the candidate."""

    id: str
    candidate: str
    test: str
    entry_point: str
    cpu_seconds: float | None = None  # per-program override of Limits.cpu_seconds
    prompt: str | None = None


@dataclass(frozen=True)
class Limits:
    """Resource limits applied to every program; recorded in the run manifest."""

    cpu_seconds: float = 3.0        # RLIMIT_CPU-style budget per program
    wall_seconds: float = 10.0      # backstop for sleeping/blocked programs
    memory_mb: int = 1024           # address-space limit per process; resident memory per program (+64 MB)
    file_size_mb: int = 16          # largest file a program may write
    open_files: int = 64
    output_bytes: int = 64 * 1024   # captured stdout+stderr kept per program
    processes: int = 64             # processes per program (its pids cgroup; RLIMIT_NPROC of its own uid)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Outcome:
    """What happened to one Program."""

    id: str
    status: str
    detail: str = ""
    duration_s: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == PASSED


class Backend(Protocol):
    """A sandbox that judges programs. Use as a context manager; ``close`` frees everything."""

    name: str

    def run(self, programs: Iterable[Program]) -> Iterator[Outcome]:
        """Judge programs; yields one Outcome per Program, in any order."""
        ...

    def close(self) -> None:
        ...

    def __enter__(self) -> "Backend":
        ...

    def __exit__(self, *exc) -> None:
        ...


class SandboxUnavailable(RuntimeError):
    """No usable isolation backend; the message says how to get one."""
