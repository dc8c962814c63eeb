"""Sandboxed execution of untrusted completions. See ``sandbox.api`` for the contract.

``open_backend(name, limits, workers)`` returns a Backend (a context manager whose ``run`` judges
programs); ``available_backends()`` says which backends work here and why; ``calibrate_cpu_limits``
derives per-problem CPU limits from the canonical solutions' runtimes.
"""
from __future__ import annotations

import os

from sandbox.api import (CRASHED, FAILED, OUT_OF_MEMORY, PASSED, SANDBOX_ERROR, STATUSES, TIMED_OUT, Backend,
                         Limits, Outcome, Program, SandboxUnavailable)
from sandbox.calibrate import calibrate_cpu_limits

from pipeline.registry import Registry

UNSAFE = "unsafe-no-isolation"
HOW_TO_GET_ONE = (
    "No sandbox backend is available. Either install Docker, start the engine (`dockerd &` as root if there is no "
    "init system) and build the image with `capforecast sandbox build`; or install bubblewrap "
    "(`apt-get install -y bubblewrap`) on a host that allows unprivileged user namespaces. "
    "`capforecast sandbox check` shows what works here. Running without isolation needs the explicit "
    f"`--sandbox {UNSAFE}` and is never chosen automatically.")


def _docker_availability() -> tuple[bool, str]:
    from sandbox.docker_backend import availability
    return availability()


def _bwrap_availability() -> tuple[bool, str]:
    from sandbox.bwrap import availability
    return availability()


def available_backends() -> dict[str, str]:
    """Backend name -> a sentence saying why it is (un)available here; keys of working ones start 'ok: '."""
    report = {}
    for name, probe in (("docker", _docker_availability), ("bwrap", _bwrap_availability)):
        ok, why = probe()
        report[name] = ("ok: " if ok else "unavailable: ") + why
    report[UNSAFE] = "ok: UNSAFE, no isolation at all; only when asked for by name"
    return report


def default_workers() -> int:
    """Two sandboxes per CPU: while one waits on a hand-off (host, server, zygote, candidate), another computes."""
    return max(1, 2 * len(os.sched_getaffinity(0)))


def open_backend(name: str = "auto", limits: Limits | None = None, workers: int | None = None) -> Backend:
    """A running backend: 'auto' = docker if its engine answers and the image exists, else bwrap, else error."""
    return BACKENDS[name](limits or Limits(), workers or default_workers())


def _open_auto(limits: Limits, workers: int) -> Backend:
    reasons = []
    for candidate, probe in (("docker", _docker_availability), ("bwrap", _bwrap_availability)):
        ok, why = probe()
        if ok:
            return BACKENDS[candidate](limits, workers)
        reasons.append(f"{candidate}: {why}")
    raise SandboxUnavailable(HOW_TO_GET_ONE + " Here: " + "; ".join(reasons) + ".")


def _open_docker(limits: Limits, workers: int) -> Backend:
    from sandbox.docker_backend import availability, open_docker
    ok, why = availability()
    if not ok:
        raise SandboxUnavailable(f"The docker backend is unavailable: {why}. " + HOW_TO_GET_ONE)
    return open_docker(limits, workers)


def _open_bwrap(limits: Limits, workers: int) -> Backend:
    from sandbox.bwrap import availability, open_bwrap
    ok, why = availability()
    if not ok:
        raise SandboxUnavailable(f"The bwrap backend is unavailable: {why}. " + HOW_TO_GET_ONE)
    return open_bwrap(limits, workers)


def _open_unsafe(limits: Limits, workers: int) -> Backend:
    from sandbox.unsafe import open_unsafe
    return open_unsafe(limits, workers)


BACKENDS = Registry("sandbox backend", {"auto": _open_auto, "docker": _open_docker, "bwrap": _open_bwrap,
                                        UNSAFE: _open_unsafe}, error=SandboxUnavailable)


__all__ = ["open_backend", "available_backends", "calibrate_cpu_limits", "Backend", "Limits", "Outcome", "Program",
           "SandboxUnavailable", "STATUSES", "PASSED", "FAILED", "TIMED_OUT", "OUT_OF_MEMORY", "CRASHED",
           "SANDBOX_ERROR", "BACKENDS"]
