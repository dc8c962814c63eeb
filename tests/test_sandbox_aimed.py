"""Attacks aimed at the fork-server design (issue 16) that need more than one program: each on both backends.

One sandbox (``workers=1``) judges a writer and then a reader: the reader passes only if something the writer
left (an IPC object, a key, a file, its text in memory) reached it. Also: the prompt's helpers, stdlib values.
"""
import json

import pytest

from sandbox.api import FAILED, PASSED, Limits, Program
from sandbox_fixtures import CORRECT, HOSTILE, TEST, WRONG, one_sandbox

LIMITS = Limits(cpu_seconds=1.0, wall_seconds=2.0, memory_mb=512)   # a candidate may stop itself
BACKENDS = ["bwrap", pytest.param("docker", marks=[pytest.mark.slow, pytest.mark.docker])]
FOUND = "def add(a, b):\n    return a + b if FOUND else 0\n"
LIBC = ("import ctypes, os, platform\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.shmat.restype = ctypes.c_void_p\n"
        "ADD_KEY, KEYCTL = {'x86_64': (248, 250), 'aarch64': (217, 219)}[platform.machine()]\n")
WRITABLE = ("/", "/etc", "/dev", "/var/tmp", "/run", "/tmp", "/dev/shm", ".", "/usr/lib")
MARKER_HEAD, MARKER_TAIL = "capforecast-marker-", "7f3a9c"   # the writer's text holds them side by side
# medium -> (writer prelude, reader prelude that sets FOUND)
MEDIA = {
    "sysv-shared-memory": (
        LIBC + "sid = libc.shmget(0x5CA21, 4096, 0o1666)\n"
        "addr = libc.shmat(sid, None, 0) if sid >= 0 else None\n"
        "if addr not in (None, ctypes.c_void_p(-1).value):\n    ctypes.memmove(addr, b'ANSWERS', 7)\n",
        LIBC + "sid = libc.shmget(0x5CA21, 0, 0)\n"
        "addr = libc.shmat(sid, None, 0) if sid >= 0 else None\n"
        "FOUND = addr not in (None, ctypes.c_void_p(-1).value) and ctypes.string_at(addr, 7) == b'ANSWERS'\n"),
    "sysv-message-queue": (LIBC + "libc.msgget(0x5CA22, 0o1666)\n", LIBC + "FOUND = libc.msgget(0x5CA22, 0) >= 0\n"),
    "sysv-semaphore": (LIBC + "libc.semget(0x5CA23, 1, 0o1666)\n", LIBC + "FOUND = libc.semget(0x5CA23, 0, 0) >= 0\n"),
    "posix-message-queue": (
        LIBC + "libc.mq_open(b'/capforecast', os.O_CREAT | os.O_RDWR, 0o600, None)\n",
        LIBC + "FOUND = libc.mq_open(b'/capforecast', os.O_RDONLY) >= 0\n"),
    "user-and-session-keyrings": (
        LIBC + "for ring in (-4, -3, -5):\n    libc.syscall(ADD_KEY, b'user', b'capforecast', b'answers', 7, ring)\n",
        LIBC + "FOUND = any(libc.syscall(KEYCTL, 10, ring, b'user', b'capforecast', 0) >= 0 for ring in (-4, -3, -5))\n"),
    "files-anywhere-writable": (
        "import os\n"
        f"for d in {WRITABLE!r}:\n"
        "    try:\n        open(os.path.join(d, 'capforecast-answers'), 'w').close()\n    except OSError:\n        pass\n",
        "import os\n"
        f"FOUND = any(os.path.exists(os.path.join(d, 'capforecast-answers')) for d in {WRITABLE!r})\n"),
    "completion-text-in-memory": (
        f"# {MARKER_HEAD}{MARKER_TAIL}\n",
        f"HEAD, TAIL = {MARKER_HEAD.encode()!r}, {MARKER_TAIL.encode()!r}\n"
        "def scan():\n"
        "    with open('/proc/self/maps') as maps, open('/proc/self/mem', 'rb', 0) as mem:\n"
        "        for line in maps:\n"
        "            fields = line.split()\n"
        "            if not fields[1].startswith('r') or (len(fields) > 5 and fields[5].startswith('[v')):\n"
        "                continue\n"
        "            lo, hi = (int(x, 16) for x in fields[0].split('-'))\n"
        "            try:\n                mem.seek(lo)\n                chunk = mem.read(hi - lo)\n"
        "            except (OSError, ValueError, OverflowError):\n                continue\n"
        "            i = chunk.find(HEAD)\n"
        "            while i >= 0:\n"
        "                if chunk[i + len(HEAD):i + len(HEAD) + len(TAIL)] == TAIL:\n                    return True\n"
        "                i = chunk.find(HEAD, i + 1)\n"
        "    return False\n"
        "FOUND = scan()\n"),
}
# Learns which guesses the judge accepted (call k+1 comes only if assertion k held) and keeps them for the next
# sample in {store}; with state surviving, the 4th run passes without ever computing a + b.
ORACLE = (
    "import ctypes, json, os\n"
    "libc = ctypes.CDLL(None, use_errno=True)\nlibc.shmat.restype = ctypes.c_void_p\n"
    "def load():\n"
    "    try:\n"
    "        if STORE == 'sysv':\n"
    "            raw = ctypes.string_at(ADDR, 4096).split(b'\\0', 1)[0] if ADDR else b''\n"
    "        else:\n"
    "            raw = b''.join(open(p, 'rb').read() for p in PATHS if os.path.exists(p))[:4096].split(b'\\n')[0]\n"
    "        return json.loads(raw)\n"
    "    except Exception:\n"
    "        return {'known': [], 'tried': 0}\n"
    "def save(state):\n"
    "    data = json.dumps(state).encode()\n"
    "    if STORE == 'sysv' and ADDR:\n        ctypes.memmove(ADDR, data + b'\\0', len(data) + 1)\n"
    "    for p in PATHS if STORE == 'files' else ():\n"
    "        try:\n            with open(p, 'wb') as f:\n                f.write(data + b'\\n')\n"
    "        except OSError:\n            pass\n"
    "STORE = '{store}'\n"
    "PATHS = [d + '/capforecast-oracle' for d in ('', '/etc', '/dev', '/var/tmp', '/run', '/tmp', '/dev/shm')]\n"
    "SID = libc.shmget(0x0AC1E, 4096, 0o1666) if STORE == 'sysv' else -1\n"
    "ADDR = libc.shmat(SID, None, 0) if SID >= 0 else None\n"
    "ADDR = None if ADDR in (None, ctypes.c_void_p(-1).value) else ADDR\n"
    "GUESSES, state, calls = [0, 5, 30], load(), 0\n"
    "def add(a, b):\n"
    "    global calls\n"
    "    if calls and len(state['known']) < calls:   # this call came: the last guess was accepted\n"
    "        state['known'].append(state['last'])\n        state['tried'] = 0\n"
    "    calls += 1\n"
    "    if calls - 1 < len(state['known']):\n        answer = state['known'][calls - 1]\n"
    "    else:\n        answer = GUESSES[state['tried'] % 3]\n        state['tried'] += 1\n"
    "    state['last'] = answer\n"
    "    save(state)\n"
    "    return answer\n")


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request):
    with one_sandbox(request.param, LIMITS) as b:
        yield b


def judge(backend, candidate, test=TEST, prompt=None, pid="p"):
    (outcome,) = list(backend.run([Program(id=pid, candidate=candidate, test=test, entry_point="add",
                                           prompt=prompt)]))
    return outcome


@pytest.mark.parametrize("medium", list(MEDIA))
def test_nothing_a_program_leaves_reaches_the_next(backend, medium):
    writer, reader = MEDIA[medium]
    assert judge(backend, writer + WRONG, pid="writer").status == FAILED
    outcome = judge(backend, reader + FOUND, pid="reader")
    assert outcome.status == FAILED, outcome


@pytest.mark.parametrize("store", ["sysv", "files"])
def test_an_answer_oracle_across_samples_never_passes(backend, store):
    statuses = [judge(backend, ORACLE.replace("{store}", store), pid=f"oracle {i}").status for i in range(6)]
    assert PASSED not in statuses, statuses


@pytest.mark.parametrize("case", ["kill-the-zygote", "hijack-zygote-via-ld-so-preload", "kill-parent-and-everyone"])
def test_the_correct_program_after_one_that_attacks_its_zygote_always_passes(backend, case):
    for i in range(8):
        assert judge(backend, HOSTILE[case], pid=f"attack {i}").status != PASSED
        outcome = judge(backend, CORRECT, pid=f"innocent {i}")
        assert outcome.status == PASSED, outcome


PROMPT = 'def helper(x):\n    return x * 2\n\n\ndef add(a, b):\n    """The sum of a and b."""\n'
HELPER_TEST = "def check(candidate):\n    assert candidate(2, 3) == helper(2) + 1\n"


def test_a_completion_that_redefines_a_prompt_helper_does_not_change_the_test(backend):
    completion = "    return 1\n\n\ndef helper(x):\n    return 0\n"   # passes if the test used this helper
    outcome = judge(backend, PROMPT + completion, HELPER_TEST, prompt=PROMPT)
    assert outcome.status == FAILED, outcome


def test_the_prompts_helpers_run_in_the_judge_and_the_entry_point_in_the_candidate(backend):
    outcome = judge(backend, PROMPT + "    return a + b\n", HELPER_TEST, prompt=PROMPT)
    assert outcome.status == PASSED, outcome


@pytest.mark.parametrize("value, module", [("Fraction(2, 3)", "fractions"), ("Decimal('1.10')", "decimal"),
                                           ("[Fraction(1, 2), {Decimal('2'): Fraction(3)}]", "fractions, decimal")])
def test_fraction_and_decimal_returns_cross_as_the_stdlib_types(backend, value, module):
    imports = "from fractions import Fraction\nfrom decimal import Decimal\n"
    candidate = imports + f"def add(a, b):\n    return {value}\n"
    test = imports + f"def check(candidate):\n    got = candidate(1, 2)\n    assert got == {value}\n" \
                     f"    assert repr(got) == repr({value})\n"
    outcome = judge(backend, candidate, test)
    assert outcome.status == PASSED, outcome


def test_a_lying_fraction_subclass_crosses_as_its_numbers_only(backend):
    candidate = ("from fractions import Fraction\n"
                 "class Liar(Fraction):\n    def __eq__(self, other):\n        return True\n"
                 "    __hash__ = Fraction.__hash__\n"
                 "def add(a, b):\n    return Liar(0)\n")
    assert judge(backend, candidate).status == FAILED


def test_execute_stage_writes_a_verdict_for_a_surrogate_exception_and_finishes(tmp_path, backend):
    from pipeline.execute import ExecuteOptions, execute_samples

    problem = {"task_id": "T/0", "prompt": "def add(a, b):\n", "test": TEST, "entry_point": "add",
               "canonical_solution": "    return a + b\n"}
    samples = tmp_path / "samples.jsonl"
    rows = [{"task_id": "T/0", "completion": "    raise ValueError('\\udc80')\n"},
            {"task_id": "T/0", "completion": "    x = '\udc80'\n    return a + b\n"},
            {"task_id": "T/0", "completion": "    return a + b\n"}]
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "verdicts.jsonl"
    options = ExecuteOptions(sandbox=backend.name, workers=1, calibrate=False)
    execute_samples(samples, out, {"T/0": problem}, options)
    verdicts = sorted((json.loads(line) for line in out.read_text().splitlines()), key=lambda v: v["sample_line"])
    assert [v["status"] for v in verdicts] == [FAILED, FAILED, PASSED], verdicts
    assert execute_samples(samples, out, {"T/0": problem}, options).already_done == 3
