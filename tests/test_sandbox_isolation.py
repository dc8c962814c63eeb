"""The isolation property (issue 24): two programs on one sandbox cannot exchange a single bit, whatever state they use.

For each channel of sandbox_channels.py, a writer program puts a random bit into some kernel state and a reader
program judged right after it on the same sandbox (``workers=1``) decodes it; the reader passes exactly when it
decodes a 1, so the verdict carries its guess. Over ``TRIALS`` balanced trials the reader must do no better than
chance (a one-sided binomial test at ``ALPHA``). So that this cannot pass vacuously, the same pair must
communicate inside one program (a writer child, then a reader child of the same candidate) for every channel
that exists there; the others are denied or hidden from every candidate. On the code before issue 24 (5088b7d)
the reader decoded the bit through the rlimits and the scheduling of the trusted processes, the tmpfs inode
counter, the PID counter and TIME_WAIT sockets on both backends, through /tmp's and /dev/shm's timestamps on
bwrap and through the container's cgroup statistics on docker.
"""
import math
import random

import pytest

from sandbox.api import FAILED, PASSED, Limits, Program
from sandbox_channels import CHANNELS
from sandbox_fixtures import TEST, WRONG, one_sandbox

LIMITS = Limits(cpu_seconds=2.0, wall_seconds=10.0, memory_mb=512)
TRIALS = 24
ALPHA = 1e-3
BACKENDS = ["bwrap", pytest.param("docker", marks=[pytest.mark.slow, pytest.mark.docker])]
FOUND = "print('SEEN', repr(SEEN), flush=True)\ndef add(a, b):\n    return a + b if BIT == 1 else 0\n"
# Both halves of a pair inside one program: the writer in a child, then the reader in a later child of the same
# candidate (the reader's bit comes back as its exit code).
ONE_PROGRAM = (
    "import os, sys\n"
    "def run(source):\n"
    "    pid = os.fork()\n"
    "    if pid == 0:\n"
    "        g = {'__name__': '__channel__'}\n"
    "        try:\n"
    "            exec(source, g)\n"
    "            print('SEEN', repr(g.get('SEEN')), flush=True)\n"
    "            os._exit(100 + g.get('BIT', 0))\n"
    "        except BaseException as exc:\n"
    "            print('ERROR', repr(exc), flush=True)\n"
    "            os._exit(99)\n"
    "    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])\n"
    "run(WRITER)\n"
    "BIT = run(READER) - 100\n"
    "def add(a, b):\n"
    "    return a + b if BIT == 1 else 0\n")


def most_correct_by_chance(trials: int, alpha: float = ALPHA) -> int:
    """The largest number of correct guesses out of ``trials`` that chance reaches with probability >= alpha."""
    tail = 0.0
    for k in range(trials, -1, -1):
        tail += math.comb(trials, k) / 2 ** trials
        if tail >= alpha:
            return k
    return trials


def balanced_bits(trials: int, seed: str) -> list[int]:
    bits = [0, 1] * (trials // 2)
    random.Random(seed).shuffle(bits)
    return bits


def judge(backend, candidate, pid):
    (outcome,) = list(backend.run([Program(id=pid, candidate=candidate, test=TEST, entry_point="add")]))
    return outcome


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request):
    with one_sandbox(request.param, LIMITS) as b:
        yield b


def test_the_chance_bound_is_a_real_binomial_tail():
    bound = most_correct_by_chance(TRIALS)
    assert sum(math.comb(TRIALS, k) for k in range(bound + 1, TRIALS + 1)) / 2 ** TRIALS < ALPHA
    assert bound < TRIALS and most_correct_by_chance(TRIALS, 0.5) == TRIALS // 2


@pytest.mark.parametrize("name", list(CHANNELS))
def test_no_bit_crosses_from_one_program_to_the_next(backend, name):
    channel, correct, seen = CHANNELS[name], 0, []
    for i, bit in enumerate(balanced_bits(TRIALS, name)):
        writer = judge(backend, f"BIT = {bit}\n" + channel.writer + WRONG, f"writer {i}")
        assert writer.status == FAILED, writer
        reader = judge(backend, channel.reader + FOUND, f"reader {i}")
        assert reader.status in (PASSED, FAILED) and "SEEN" in reader.extra["output"], reader   # it read something
        correct += (reader.status == PASSED) == bit
        seen.append(reader.extra["output"].strip()[:200])
    assert correct <= most_correct_by_chance(TRIALS), (correct, seen[:4])


@pytest.mark.parametrize("name", [n for n, c in CHANNELS.items() if c.control])
def test_the_same_pair_communicates_inside_one_program(backend, name):
    channel, correct = CHANNELS[name], 0
    for i, bit in enumerate(balanced_bits(TRIALS, name + " inside")):
        writer = f"BIT = {bit}\n" + channel.writer
        program = f"WRITER, READER = {writer!r}, {channel.reader!r}\n" + ONE_PROGRAM
        outcome = judge(backend, program, f"pair {i}")
        assert "ERROR" not in outcome.extra["output"], outcome
        correct += (outcome.status == PASSED) == bit
    assert correct > most_correct_by_chance(TRIALS), correct
