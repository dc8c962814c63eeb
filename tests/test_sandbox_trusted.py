"""The trusted processes and the limits (issue 24), on both backends with one sandbox (``workers=1``).

An attack on the fork server or the zygote (their limits, scheduling, process group, signals through F_SETOWN or
pidfds, their fd table) never passes, never becomes ``sandbox error``, leaves them the same running processes,
and the correct program after it passes. CPU burnt in children made with clone(CLONE_PARENT) is the program's;
socket buffers cannot grow past the default; every call the filter denies is denied inside a candidate. On the
unsafe backend (no uid of its own, so attacks do reach the zygote) the server's own check of the trusted state
stops it from serving a changed state. On the code before issue 24 (5088b7d), the lowered limits failed every
later correct program, the laundering attack became ``sandbox error``, F_SETOWN and pidfd signals killed the
zygote, the CLONE_PARENT children's 1.2 CPU-s passed under a 0.5 s limit and socket buffers grew to 8 MB each.
"""
import os
import time

import pytest

import sandbox
from sandbox.api import FAILED, PASSED, SANDBOX_ERROR, TIMED_OUT, Limits, Program
from sandbox_attacks import ATTACKS, CLONE_PARENT_CPU, DENIED_CALLS, PAIRS, SOCKET_BUFFERS
from sandbox_fixtures import CORRECT, TEST, one_sandbox

LIMITS = Limits(cpu_seconds=0.5, wall_seconds=5.0, memory_mb=512)
BACKENDS = ["bwrap", pytest.param("docker", marks=[pytest.mark.slow, pytest.mark.docker])]
ROUNDS = 3


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request):
    with one_sandbox(request.param, LIMITS) as b:
        judge(b, CORRECT)   # warm up
        yield b


def judge(backend, candidate, cpu_seconds=None):
    (outcome,) = list(backend.run([Program(id="p", candidate=candidate, test=TEST, entry_point="add",
                                           cpu_seconds=cpu_seconds)]))
    return outcome


def trusted_processes(uids) -> dict[int, str]:
    """Host pid -> state of the sandbox's processes between two programs: its trusted ones (and bubblewrap)."""
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid in uids:
                    state = open(f"/proc/{name}/stat").read().rsplit(")", 1)[1].split()[0]
                    if state not in "ZX":
                        found[int(name)] = state
            except OSError:
                pass
    return found


def settled(uids, settle_s=2.0):
    end = time.monotonic() + settle_s
    while True:
        before = trusted_processes(uids)
        time.sleep(0.05)
        if trusted_processes(uids) == before or time.monotonic() > end:
            return before


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_an_attack_on_the_trusted_processes_changes_nothing_for_the_next_program(backend, attack):
    before, restarts = settled(backend.uids), backend.restarts
    for _ in range(ROUNDS):
        outcome = judge(backend, ATTACKS[attack])
        assert outcome.status not in (PASSED, SANDBOX_ERROR), outcome
        innocent = judge(backend, CORRECT)
        assert innocent.status == PASSED, (outcome, innocent)
    assert backend.restarts == restarts
    assert settled(backend.uids) == before and "T" not in before.values()


def test_cpu_of_children_made_with_clone_parent_is_the_programs(backend):
    outcome = judge(backend, CLONE_PARENT_CPU)
    assert outcome.status == TIMED_OUT and outcome.detail == "CPU-time limit", outcome


def test_without_delegated_cgroups_clone_parent_cpu_is_still_the_programs(monkeypatch):
    """Where no cgroup can be delegated (not root, cgroup v2), the program's CPU is counted from /proc: every process
    of the sandbox but the trusted ones, and every process reaped while it ran."""
    from sandbox import cgroup
    monkeypatch.setattr(cgroup, "hierarchies", lambda: {})
    with sandbox.open_backend("bwrap", limits=LIMITS, workers=1) as b:
        outcome, innocent = judge(b, CLONE_PARENT_CPU), judge(b, CORRECT)
    assert outcome.status == TIMED_OUT and outcome.detail == "CPU-time limit" and innocent.status == PASSED, \
        (outcome, innocent)


def test_socket_buffers_cannot_grow_past_the_default(backend):
    """A unix socket holds at most its send buffer (the default, 208 KB here) plus the one message that crossed it."""
    default = int(open("/proc/sys/net/core/wmem_default").read())
    outcome = judge(backend, SOCKET_BUFFERS)
    queued = int(outcome.extra["output"].split("QUEUED")[1].split()[0])
    assert outcome.status == PASSED and 0 < queued <= PAIRS * 2 * default, (outcome, queued)


def test_every_call_the_filter_denies_is_denied_inside_a_candidate(backend):
    import platform

    from sandbox.seccomp import NUMBERS
    numbers = NUMBERS[platform.machine()]
    calls = "".join(f"    results[{name!r}] = call({numbers[name]}, *{args})\n"
                    for name, (args, _) in DENIED_CALLS.items())
    program = (
        "import ctypes, os, socket\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "SOCK = socket.socket(socket.AF_UNIX).fileno()\n"
        "def call(nr, *args):\n"
        "    result = libc.syscall(nr, *args)\n"
        "    if result == 0 and nr == %d:   # a child of an allowed clone\n"
        "        os._exit(0)\n"
        "    return ctypes.get_errno() if result == -1 else 'allowed'\n"
        "def add(a, b):\n"
        "    results = {}\n" % numbers["clone"] + calls +
        "    print('RESULTS', results, flush=True)\n"
        "    return a + b\n")
    outcome = judge(backend, program)
    assert outcome.status == PASSED, outcome
    results = eval(outcome.extra["output"].split("RESULTS", 1)[1].splitlines()[0])   # noqa: S307 - ours
    assert results == {name: errno for name, (_, errno) in DENIED_CALLS.items()}


def test_the_server_stops_serving_once_its_trusted_state_changed():
    """Without a uid boundary (unsafe backend, the same uid as the zygote) an attack reaches the zygote: the
    server's check finds it before the next program, which is judged on a fresh server and passes."""
    with pytest.warns(UserWarning, match="UNSAFE"):
        backend = sandbox.open_backend("unsafe-no-isolation", limits=LIMITS, workers=1)
    with backend:   # the candidate runs as us: it touches its parent, the zygote, only
        attack = judge(backend, "import os\nos.sched_setscheduler(os.getppid(), os.SCHED_BATCH, os.sched_param(0))\n"
                                "def add(a, b):\n    return 0\n")
        innocent = judge(backend, CORRECT)
        restarts = backend.restarts
    assert attack.status == FAILED and innocent.status == PASSED and restarts >= 1, (attack, innocent, restarts)
