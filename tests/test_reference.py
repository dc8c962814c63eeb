"""The embedded reference family: its benchmark, corpora, tokenizer and committed checkpoints."""
import gzip
import itertools
import json

import pytest

from pipeline.reference.cli import FAMILY_DIR, HELD_OUT_PATH, SUITE_PATH
from pipeline.reference.corpus import held_out_documents, training_documents
from pipeline.reference.suite import (LENGTH_COUNTS, Task, build_suite, partition, read_suite, render_function,
                                      suite_bytes)
from pipeline.reference.train import FAMILY, count_params

TRAINING_SAMPLE = 60000  # documents of the training stream checked for leaks (the family sees ~120k)


@pytest.fixture(scope="module")
def suite():
    return read_suite(SUITE_PATH)


@pytest.fixture(scope="module")
def training_sample():
    return list(itertools.islice(training_documents(), TRAINING_SAMPLE))


def docstring(text: str) -> str:
    return text.split('"""')[1]


@pytest.fixture(scope="module")
def generated():
    """The suite as the generator writes it, built once for the module."""
    return suite_bytes(build_suite())


def test_suite_generation_is_deterministic(generated):
    assert suite_bytes(build_suite()) == generated


def test_committed_suite_is_what_the_generator_writes(generated):
    assert SUITE_PATH.read_bytes() == generated


def test_suite_is_humaneval_format(suite):
    assert len(suite) == sum(LENGTH_COUNTS.values()) == 164
    assert len({p["task_id"] for p in suite}) == len(suite)
    for p in suite:
        assert set(p) >= {"task_id", "prompt", "canonical_solution", "test", "entry_point"}
        assert p["prompt"].startswith(f"def {p['entry_point']}(") and p["prompt"].endswith('"""\n')
        assert "def check(candidate):" in p["test"]


def test_every_suite_instance_is_from_the_evaluation_partition(suite):
    assert all(partition(p["key"]) == "eval" for p in suite)


def test_no_evaluation_instance_in_the_training_corpus(suite, training_sample):
    eval_keys = {p["key"] for p in suite}
    eval_docs = {docstring(p["prompt"]) for p in suite}
    assert not eval_keys & {key for key, _ in training_sample}
    assert not eval_docs & {docstring(text) for _, text in training_sample}


def test_held_out_corpus_is_in_neither_training_nor_benchmark(suite, training_sample):
    rows = [json.loads(line) for line in HELD_OUT_PATH.read_text().splitlines()]
    held_keys = {r["key"] for r in rows}
    assert all(partition(k) == "held_out" for k in held_keys)
    assert not held_keys & {p["key"] for p in suite}
    assert not held_keys & {key for key, _ in training_sample}
    assert not {docstring(r["text"]) for r in rows} & {docstring(text) for _, text in training_sample}


def test_committed_held_out_corpus_is_what_the_generator_writes():
    rows = [json.loads(line) for line in HELD_OUT_PATH.read_text().splitlines()]
    assert rows == held_out_documents()


@pytest.mark.parametrize("kind,steps", [("int", ()), ("str", (("reverse", None, None),)),
                                        ("list", (("head", 3, None), ("sort", None, None)))])
def test_rendered_function_runs_its_own_steps(kind, steps):
    prompt, body = render_function(Task(kind, steps), "f")
    assert prompt.startswith(f"def f(") and body.endswith("return " + {"int": "n", "str": "s", "list": "xs"}[kind] + "\n")
    assert body.count("\n") == len(steps) + 1


def test_canonical_solutions_pass_their_tests_in_the_sandbox(suite):
    sandbox = pytest.importorskip("sandbox")
    from sandbox.api import Limits, Program

    programs = [Program(id=p["task_id"], candidate=p["prompt"] + p["canonical_solution"], test=p["test"],
                        entry_point=p["entry_point"]) for p in suite]
    with sandbox.open_backend("bwrap", limits=Limits(), workers=2) as backend:
        outcomes = list(backend.run(programs))
    assert len(outcomes) == len(suite)
    assert [o.id for o in outcomes if not o.passed] == []


def test_a_wrong_solution_fails_its_test_in_the_sandbox(suite):
    sandbox = pytest.importorskip("sandbox")
    from sandbox.api import Limits, Program

    p = suite[0]
    wrong = p["prompt"] + "    return None\n"
    with sandbox.open_backend("bwrap", limits=Limits(), workers=1) as backend:
        [outcome] = list(backend.run([Program(id="w", candidate=wrong, test=p["test"], entry_point=p["entry_point"])]))
    assert not outcome.passed


def committed_cards():
    return [json.loads((FAMILY_DIR / m.name / "card.json").read_text()) for m in FAMILY.members]


def test_family_spans_thirty_times_compute_with_six_checkpoints():
    flops = [c["flops"] for c in committed_cards()]
    assert len(flops) >= 6 and max(flops) / min(flops) >= 30
    assert sum(f <= max(flops) / 5 for f in flops) >= 4


@pytest.mark.parametrize("family", ["reference", "reference-full"])
def test_config_family_is_the_committed_cards(family):
    from pipeline.config import load_config

    fam = load_config("checkpoints.yaml").families[family]
    cards = {c["name"]: c for c in committed_cards()}
    for ck in fam.checkpoints:
        assert (ck.params, ck.tokens) == (cards[ck.name]["params"], cards[ck.name]["tokens"])
    assert fam.target.checkpoint == max(fam.checkpoints, key=lambda ck: ck.compute).name


def test_default_family_spans_thirty_times_with_a_fit_set_under_a_fifth():
    from pipeline.config import load_config

    fam = load_config("checkpoints.yaml").families["reference"]
    computes = sorted(ck.compute for ck in fam.checkpoints)
    assert len(computes) >= 6 and computes[-1] / computes[0] >= 30
    assert sum(c <= computes[-1] * fam.fit.max_fit_compute_fraction for c in computes) >= 4


@pytest.mark.parametrize("member", FAMILY.members, ids=lambda m: m.name)
def test_committed_card_matches_recomputed_params_and_flops(member):
    card = json.loads((FAMILY_DIR / member.name / "card.json").read_text())
    params = count_params(member, FAMILY)
    tokens = FAMILY.tokens(member)
    assert (card["params"], card["tokens"], card["flops"]) == (params, tokens, 6 * params * tokens)
    assert card["member"]["steps"] == member.steps and card["recipe"]["seed"] == FAMILY.seed


@pytest.mark.parametrize("member", FAMILY.members, ids=lambda m: m.name)
def test_committed_weights_have_the_carded_parameter_count(member):
    from safetensors.torch import load_file

    tensors = load_file(str(FAMILY_DIR / member.name / "model.safetensors"))
    stored = sum(t.numel() for name, t in tensors.items() if name != "lm_head.weight")  # tied to the embedding
    assert stored == count_params(member, FAMILY)


def test_prompt_tokens_are_a_prefix_of_prompt_plus_solution(suite):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(FAMILY_DIR / FAMILY.members[0].name)
    for p in suite:
        prompt = tok(p["prompt"])["input_ids"]
        assert tok(p["prompt"] + p["canonical_solution"])["input_ids"][:len(prompt)] == prompt, p["task_id"]


@pytest.mark.parametrize("member", [FAMILY.members[0], FAMILY.members[-1]], ids=lambda m: m.name)
def test_committed_checkpoint_loads_and_writes_code(member, suite):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = FAMILY_DIR / member.name
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    enc = tok(suite[0]["prompt"], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**enc, do_sample=False, max_new_tokens=12, pad_token_id=tok.eos_token_id)
    text = tok.decode(out[0, enc["input_ids"].shape[1]:])
    assert text.startswith("    ")
