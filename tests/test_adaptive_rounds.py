"""Adaptive rounds inside `capforecast run` (pipeline.run.sample_in_rounds, planned by pipeline/sampling/rounds.py): a
fake sample-and-judge step with known pass rates, and one slow run through the real generate/execute stages on tiny
random models."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from pipeline.config import AdaptiveSettings
from pipeline.errors import UserError
from pipeline.records import JsonlAppender, read_jsonl
from pipeline.rundir import RunDir
from simulated.runs import family_of, write_manifest_for

RATES = {"a": [0.1, 0.3, 0.05], "b": [0.2, 0.4, 0.1], "c": [0.3, 0.5, 0.15], "big": [0.4, 0.6, 0.2]}
COMPUTE = {"a": 1e20, "b": 1e21, "c": 1e22, "big": 1e24}
TASKS = ["T/0", "T/1", "T/2"]


def _family(**settings):
    adaptive = AdaptiveSettings(**{"pilot": 4, "r": 2, "budget": 400, "round_size": 50, "samples_per_cell": 30,
                                   "max_rounds": 30, **settings})
    ckpts = [SimpleNamespace(name=n, compute=c) for n, c in COMPUTE.items()]
    return SimpleNamespace(name="fake", sampling=SimpleNamespace(adaptive=adaptive), checkpoints=ckpts,
                           target_name="big", target_compute=COMPUTE["big"])


def _manifest(run_dir):
    return write_manifest_for(run_dir, family_of(COMPUTE, "big"), problems=len(TASKS))


class FakeSampler:
    """Writes verdicts for the requested sample indices, passed ~ Bernoulli(RATES), seeded per sample."""

    def __init__(self, fail_after: int | None = None):
        self.calls, self.fail_after = [], fail_after

    def __call__(self, run_dir, family, ckpt, problems, manifest, requests=None):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError("killed")
        self.calls.append((ckpt.name, dict(requests)))
        path = Path(run_dir) / "verdicts" / f"{ckpt.name}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        have = {(r["task_id"], r["sample_index"]) for _, r in read_jsonl(path)} if path.exists() else set()
        with JsonlAppender(path) as out:
            for task, total in requests.items():
                for i in range(total):
                    if (task, i) not in have:
                        rng = np.random.default_rng([list(COMPUTE).index(ckpt.name), TASKS.index(task), i])
                        ok = bool(rng.random() < RATES[ckpt.name][TASKS.index(task)])
                        out.write({"checkpoint": ckpt.name, "task_id": task, "sample_index": i, "passed": ok,
                                   "status": "passed" if ok else "failed"})


def _run(tmp_path, family, sampler, names=("a", "b", "c")):
    import pipeline.run

    ckpts = [c for c in family.checkpoints if c.name in names]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline.run, "sample_and_judge", sampler)
        return pipeline.run.sample_in_rounds(RunDir(tmp_path), family, ckpts, {t: {} for t in TASKS},
                                             _manifest(tmp_path))


def _cells(tmp_path):
    return {(c["checkpoint"], c["task_id"]): c for c in
            json.loads((tmp_path / "plan.json").read_text())["design"]["cells"]}


def test_rounds_run_until_every_cell_met_its_rule(tmp_path):
    summary = _run(tmp_path, _family(), FakeSampler())
    assert summary["done"] and summary["rounds"] >= 2 and summary["cells"]["complete"] == 9
    assert len(_cells(tmp_path)) == 9 and all(c["start"] == 4 for c in _cells(tmp_path).values())
    points = json.loads((tmp_path / "passuntil.json").read_text())["points"]
    assert all(p["complete"] == 3 and p["mean_log_pass_rate"] < 0 for p in points)


def test_the_pilot_is_the_first_round(tmp_path):
    sampler = FakeSampler()
    _run(tmp_path, _family(), sampler)
    assert all(set(req.values()) == {4} for _, req in sampler.calls[:3])


def test_a_resumed_run_reuses_the_recorded_allocation(tmp_path):
    family = _family()
    with pytest.raises(RuntimeError):
        _run(tmp_path, family, FakeSampler(fail_after=5))   # pilot (3 calls) + part of round 2
    before = _cells(tmp_path)
    assert before
    assert _run(tmp_path, family, FakeSampler())["done"]
    assert _cells(tmp_path) == before


def test_changing_the_settings_after_allocation_is_refused(tmp_path):
    _run(tmp_path, _family(), FakeSampler())
    with pytest.raises(UserError, match="budget: 400 there, 500 now"):
        _run(tmp_path, _family(budget=500), FakeSampler())


def test_the_target_gets_a_rule_fixed_before_its_draws(tmp_path):
    family = _family()
    _run(tmp_path, family, FakeSampler())
    summary = _run(tmp_path, family, FakeSampler(), names=("big",))
    cells = _cells(tmp_path)
    assert summary["done"] and all(cells[("big", t)] == {"checkpoint": "big", "task_id": t, "start": 0,
                                                         "start_passed": 0, "r": 2, "budget": 400} for t in TASKS)
    estimates = json.loads((tmp_path / "passuntil.json").read_text())
    assert "actual" in estimates and estimates["prediction"]["value"] == pytest.approx(-estimates["alpha"])


def test_no_cell_draws_past_its_budget(tmp_path):
    family = _family(budget=6, r=5)
    _run(tmp_path, family, FakeSampler())
    for name in ("a", "b", "c"):
        counts = {}
        for _, row in read_jsonl(tmp_path / "verdicts" / f"{name}.jsonl"):
            counts[row["task_id"]] = counts.get(row["task_id"], 0) + 1
        assert max(counts.values()) <= 4 + 6


def test_max_rounds_stops_and_says_how_to_continue(tmp_path):
    summary = _run(tmp_path, _family(max_rounds=2), FakeSampler())
    assert not summary["done"] and summary["rounds"] == 2 and "rerun" in summary["note"]
    assert _run(tmp_path, _family(max_rounds=30), FakeSampler())["done"]


def test_a_round_that_adds_nothing_is_an_error(tmp_path):
    with pytest.raises(UserError, match="added no judged samples"):
        _run(tmp_path, _family(), lambda *args, **kwargs: None)


def test_without_adaptive_settings_rounds_refuse(tmp_path):
    family = _family()
    family.sampling.adaptive = None
    with pytest.raises(UserError, match="sampling.adaptive"):
        _run(tmp_path, family, FakeSampler())


@pytest.mark.slow
def test_run_samples_in_rounds_through_generate_and_execute(tmp_path, tiny_family_dir, small_benchmark):
    """The real `capforecast run` with sampling.adaptive: plan.json, bounded samples, the target last."""
    import yaml

    from pipeline.run import run_family

    family = {
        "benchmark": str(small_benchmark),
        "sampling": {"n": 2, "max_new_tokens": 8, "temperature": 0.8, "seed": 7, "batch_size": 8,
                     "adaptive": {"pilot": 2, "r": 1, "budget": 3, "round_size": 2, "samples_per_cell": 4,
                                  "max_rounds": 6}},
        "sandbox": {"backend": "bwrap", "workers": 2},
        "fit": {"bootstrap": 20}, "loss": {"enabled": False}, "target": "tiny-3",
        "checkpoints": [{"name": n, "model": str(tiny_family_dir / m), "params": p, "tokens": t}
                        for n, m, p, t in (("tiny-0", "tiny-1", 10800, 500_000), ("tiny-1", "tiny-1", 10800, 1_000_000),
                                           ("tiny-2", "tiny-2", 37024, 2_000_000),
                                           ("tiny-3", "tiny-3", 70896, 4_000_000))],
    }
    config = tmp_path / "checkpoints.yaml"
    config.write_text(yaml.safe_dump({"families": {"tiny": family}}))
    run_dir = run_family(config, "tiny", tmp_path / "run")
    cells = _cells(run_dir)
    assert {c for c, _ in cells} == {"tiny-0", "tiny-1", "tiny-2", "tiny-3"}
    assert all(cells[("tiny-3", t)]["start"] == 0 for c, t in cells if c == "tiny-3")
    for name in ("tiny-0", "tiny-1", "tiny-2", "tiny-3"):
        rows = [r for _, r in read_jsonl(run_dir / "verdicts" / f"{name}.jsonl")]
        per_task = {}
        for row in rows:
            per_task[row["task_id"]] = per_task.get(row["task_id"], 0) + 1
        start = {t: cells[(name, t)]["start"] for c, t in cells if c == name}
        assert all(n <= start[t] + 3 for t, n in per_task.items())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert set(manifest["adaptive"]) == {"tiny-0+tiny-1+tiny-2", "tiny-3"}
    assert manifest["adaptive"]["tiny-3"]["done"]
    assert (run_dir / "passuntil.csv").is_file() and (run_dir / "report.md").is_file()
