"""Generation: per-sample reproducibility across batches, orders, shards and resumes; stop handling; files."""
import json
import sys
import textwrap
from pathlib import Path

import pytest

from pipeline.errors import UserError
from pipeline.rundir import RunDir
from pipeline.generate.stage import (cut_at_stop, generate_checkpoint, generate_family, merge_shards, parse_shard,
                               read_plan, shard_block, shard_from_env)

PROMPTS = ["def add(a, b):\n    ", "def is_even(n):\n    \"\"\"Return True if n is even.\"\"\"\n",
           "import math\n\ndef area(r):\n", "def greet(name):\n    return", "class Stack:\n    def push(self, x):\n"]
STOP = ["e", "\n#"]  # 'e' is common, so rows stop at different steps and leave their batch early


def write_tiny_setup(root: Path, *, n=3, batch_size=4, max_new_tokens=12, stop=STOP, names=("small",),
                     problems=None, build=True) -> Path:
    """A tokenizer trained here, tiny random Llamas, a problem file and a checkpoints.yaml; no hub."""
    from pipeline.generate.tinyfamily import TinySpec, build_model, train_tokenizer

    root.mkdir(parents=True, exist_ok=True)
    problems = problems or [{"task_id": f"T/{i}", "prompt": p, "test": "", "entry_point": "f"}
                            for i, p in enumerate(PROMPTS)]
    if build:
        tokenizer = train_tokenizer(root / "_tok", vocab_size=300, texts=PROMPTS * 20)
        for seed, name in enumerate(names):
            build_model(TinySpec(name, hidden_size=32, layers=2, heads=2, seed=seed), tokenizer, root / name)
    else:  # config-only tests: the model directories merely exist
        for name in names:
            (root / name).mkdir(exist_ok=True)
    with open(root / "problems.jsonl", "w") as fh:
        for problem in problems:
            fh.write(json.dumps(problem) + "\n")
    ckpts = "\n".join(f"      - {{name: {name}, model: {name}, params: {1000 * (i + 1)}, tokens: 1000000}}"
                      for i, name in enumerate(names))
    (root / "checkpoints.yaml").write_text(textwrap.dedent(f"""\
        families:
          tiny:
            benchmark: problems.jsonl
            sampling: {{n: {n}, temperature: 1.0, top_p: 0.95, max_new_tokens: {max_new_tokens},
                       batch_size: {batch_size}, stop: {json.dumps(stop)}, seed: 7}}
            target: {names[-1]}
            checkpoints:
        """) + ckpts + "\n")
    return root / "checkpoints.yaml"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from pipeline.config import load_config
    from pipeline.problems import load_problems

    config = write_tiny_setup(tmp_path_factory.mktemp("tiny"))
    family = load_config(config).family()
    return family, load_problems(config.parent / "problems.jsonl")


def with_sampling(family, **changes):
    return family.model_copy(update={"sampling": family.sampling.model_copy(update=changes)})


def rows_by_key(path):
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    keyed = {(r["task_id"], r["sample_index"]): r for r in rows}
    assert len(keyed) == len(rows), "duplicate sample keys in " + str(path)
    return keyed


@pytest.fixture(scope="module")
def reference(setup, tmp_path_factory):
    family, problems = setup
    out = tmp_path_factory.mktemp("ref") / "small.jsonl"
    generate_checkpoint(family, family.checkpoints[0], problems, out)
    return rows_by_key(out)


@pytest.mark.parametrize("text,expected", [
    ("    return a + b\ndef g():", "    return a + b"),
    ("x\n#c\nclass A", "x"),
    ("no stop here", "no stop here"),
    ("\ndef first", ""),
    ("a\nprint(1)\ndef b", "a"),
])
def test_cut_at_earliest_stop(text, expected):
    assert cut_at_stop(text, ["\nclass", "\ndef", "\n#", "\nif", "\nprint"]) == expected


@pytest.mark.parametrize("bad", ["", "1", "2/2", "-1/3", "a/b", "1/0", "0/-1", "1/2/3"])
def test_bad_shard_is_a_user_error(bad):
    with pytest.raises(UserError):
        parse_shard(bad)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 40])
def test_shards_partition_the_units(n):
    units = list(range(23))
    blocks = [shard_block(units, (i, n)) for i in range(n)]
    assert sorted(u for b in blocks for u in b) == units


def test_slurm_array_environment_picks_the_shard():
    env = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "4", "SLURM_ARRAY_TASK_COUNT": "3"}
    assert shard_from_env(env) == (1, 3)
    assert shard_from_env({}) is None


def test_rows_carry_the_sample_contract(reference, setup):
    family, problems = setup
    assert len(reference) == len(problems) * family.sampling.n
    for (task, index), row in reference.items():
        assert row["checkpoint"] == "small" and row["task_id"] == task and row["sample_index"] == index
        assert isinstance(row["seed"], int) and isinstance(row["completion"], str)
        assert row["finish_reason"] in ("stop", "length") and 1 <= row["n_tokens"] <= family.sampling.max_new_tokens


def test_completions_are_cut_before_any_stop(reference):
    for row in reference.values():
        assert not any(s in row["completion"] for s in STOP)
        assert row["raw_completion"].startswith(row["completion"])


def test_finish_reason_matches_tokens(reference, setup):
    family, _ = setup
    reasons = {r["finish_reason"] for r in reference.values()}
    assert reasons == {"stop", "length"}, "fixture should exercise both outcomes"
    for row in reference.values():
        if row["finish_reason"] == "length":
            assert row["n_tokens"] == family.sampling.max_new_tokens and row["completion"] == row["raw_completion"]


@pytest.mark.parametrize("batch_size", [1, 2, 5, 16])
def test_same_key_same_completion_whatever_the_batch_size(setup, reference, tmp_path, batch_size):
    family, problems = setup
    out = tmp_path / "s.jsonl"
    generate_checkpoint(with_sampling(family, batch_size=batch_size), family.checkpoints[0], problems, out)
    assert rows_by_key(out) == reference


def test_same_key_same_completion_in_another_order_and_company(setup, reference):
    from pipeline.generate.backends import Request, SamplingOptions
    from pipeline.generate.backends.hf import load

    family, problems = setup
    s = family.sampling
    backend = load(family.model_location(family.checkpoints[0]),
                   SamplingOptions(s.temperature, s.top_p, s.max_new_tokens, tuple(s.stop), 3))
    keys = sorted(reference, reverse=True)[:7]  # a reversed, partial subset mixed across prompts
    requests = [Request(t, i, problems[t]["prompt"], reference[(t, i)]["seed"]) for t, i in keys]
    for req, comp in backend.generate_batch(requests):
        assert comp.text == reference[(req.task_id, req.sample_index)]["raw_completion"]


@pytest.mark.parametrize("width", [4, 16])
def test_finished_rows_riding_along_do_not_change_results(setup, reference, width):
    # the GPU policy keeps finished rows in the batch until enough have finished, then refills; same results
    from pipeline.generate.backends import Request, SamplingOptions
    from pipeline.generate.backends.hf import load

    family, problems = setup
    s = family.sampling
    backend = load(family.model_location(family.checkpoints[0]),
                   SamplingOptions(s.temperature, s.top_p, s.max_new_tokens, tuple(s.stop), width))
    backend.compact_at = 0.5
    requests = [Request(t, i, problems[t]["prompt"], reference[(t, i)]["seed"]) for t, i in sorted(reference)]
    results = [pair for chunk in backend.generate(requests) for pair in chunk]
    assert backend.stats["forward_rows"] > backend.stats["tokens"] - len(requests)  # finished rows rode along
    assert sorted((r.task_id, r.sample_index) for r, _ in results) == sorted(reference)
    for req, comp in results:
        assert comp.text == reference[(req.task_id, req.sample_index)]["raw_completion"]


def test_no_forward_pass_is_spent_on_finished_rows(setup, reference):
    from pipeline.generate.backends import Request, SamplingOptions
    from pipeline.generate.backends.hf import load

    family, problems = setup
    s = family.sampling
    backend = load(family.model_location(family.checkpoints[0]),
                   SamplingOptions(s.temperature, s.top_p, s.max_new_tokens, tuple(s.stop), 4))
    requests = [Request(t, i, problems[t]["prompt"], reference[(t, i)]["seed"]) for t, i in sorted(reference)]
    for _ in backend.generate(requests):
        pass
    # every decode step feeds a token of an unfinished row; a row's last token needs no step
    assert backend.stats["forward_rows"] == backend.stats["tokens"] - len(requests)
    assert backend.stats["prefill_rows"] == len(problems)  # each prompt is prefilled once, then reused


def test_resume_after_a_kill_gives_the_uninterrupted_file(setup, reference, tmp_path):
    family, problems = setup
    out = tmp_path / "s.jsonl"
    lines = [json.dumps(r) for r in list(reference.values())[:5]]
    out.write_text("\n".join(lines[:4]) + "\n" + lines[4][:25])  # four whole rows and a torn fifth
    summary = generate_checkpoint(family, family.checkpoints[0], problems, out)
    assert summary["existing"] == 4 and summary["generated"] == len(reference) - 4
    assert rows_by_key(out) == reference


def test_complete_file_is_not_regenerated(setup, reference, tmp_path):
    family, problems = setup
    out = tmp_path / "s.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in reference.values()))
    summary = generate_checkpoint(family, family.checkpoints[0], problems, out)
    assert summary["generated"] == 0 and summary["engine"]["name"] == "transformers"
    assert rows_by_key(out) == reference


def test_requests_extend_a_task_with_new_indices_only(setup, reference, tmp_path):
    family, problems = setup
    out = tmp_path / "s.jsonl"
    generate_checkpoint(family, family.checkpoints[0], problems, out, requests={"T/1": 2})
    generate_checkpoint(family, family.checkpoints[0], problems, out, requests={"T/1": 5, "T/3": 1})
    rows = rows_by_key(out)
    assert sorted(rows) == [("T/1", i) for i in range(5)] + [("T/3", 0)]
    assert all(rows[k] == reference[k] for k in rows if k in reference)


def test_unknown_requested_task_is_a_user_error(setup, tmp_path):
    family, problems = setup
    with pytest.raises(UserError, match="nope"):
        generate_checkpoint(family, family.checkpoints[0], problems, tmp_path / "s.jsonl", requests={"nope": 1})


def test_rows_from_other_settings_are_refused(setup, reference, tmp_path):
    family, problems = setup
    out = tmp_path / "s.jsonl"
    out.write_text(json.dumps(next(iter(reference.values()))) + "\n")
    with pytest.raises(UserError, match=r"s\.jsonl, line 1"):
        generate_checkpoint(with_sampling(family, seed=8), family.checkpoints[0], problems, out)


@pytest.mark.parametrize("n", [2, 3])
def test_shards_merge_to_the_unsharded_file(setup, reference, tmp_path, n):
    family, _ = setup
    for i in range(n):
        generate_family(family, tmp_path, shard=(i, n))
    assert not (tmp_path / "samples" / "small.jsonl").exists()
    added = merge_shards(tmp_path)
    assert added == {"small": len(reference)}
    assert rows_by_key(RunDir(tmp_path).samples("small")) == reference
    assert not (tmp_path / "samples" / "shards").exists()
    assert merge_shards(tmp_path) == {}


def test_merge_drops_duplicates_from_overlapping_shards(setup, reference, tmp_path):
    family, _ = setup
    generate_family(family, tmp_path, shard=(0, 2))
    first = RunDir(tmp_path).samples("small", (0, 2))
    extra = RunDir(tmp_path).samples("small", (1, 2))
    expected = len(first.read_text().splitlines())
    extra.write_text(first.read_text())  # a re-run shard whose rows repeat
    merge_shards(tmp_path)
    assert len(rows_by_key(RunDir(tmp_path).samples("small"))) == expected


def test_a_shard_skips_samples_already_merged(setup, reference, tmp_path):
    family, _ = setup
    merged = RunDir(tmp_path).samples("small")
    merged.parent.mkdir(parents=True)
    merged.write_text("".join(json.dumps(r) + "\n" for r in reference.values()))
    summaries = generate_family(family, tmp_path, shard=(1, 2))
    assert summaries[0]["generated"] == 0


@pytest.mark.parametrize("plan,error", [
    ("{", "not valid JSON"),
    ('{"requests": 3}', "'requests' list"),
    ('{"requests": [{"checkpoint": "small", "task_id": "T/0"}]}', r"requests\[0\]"),
    ('{"requests": [{"checkpoint": "small", "task_id": "T/0", "n_total": -1}]}', r"requests\[0\]"),
    ('{"requests": [{"checkpoint": 1, "task_id": "T/0", "n_total": 1}]}', r"requests\[0\]"),
])
def test_bad_plan_is_a_user_error(tmp_path, plan, error):
    (tmp_path / "plan.json").write_text(plan)
    with pytest.raises(UserError, match=error):
        read_plan(tmp_path / "plan.json")


def test_plan_draws_only_its_requests(setup, reference, tmp_path):
    family, _ = setup
    plan = {"design": {}, "requests": [{"checkpoint": "small", "task_id": "T/2", "n_total": 2}]}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    generate_family(family, tmp_path, plan=read_plan(tmp_path / "plan.json"))
    rows = rows_by_key(RunDir(tmp_path).samples("small"))
    assert rows == {k: reference[k] for k in [("T/2", 0), ("T/2", 1)]}


def test_choosing_no_backend_imports_no_heavy_module():
    import subprocess

    code = ("import sys, pipeline.generate.stage, pipeline.generate.backends, pipeline.generate.seeds; "
            "print(sorted(m for m in ('torch', 'transformers', 'vllm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == "[]"


def test_unknown_backend_is_a_user_error():
    from pipeline.generate.backends import SamplingOptions, load_backend

    with pytest.raises(UserError, match="unknown generation backend"):
        load_backend("tpu-magic", "m", SamplingOptions(1.0, 1.0, 4, (), 1))
