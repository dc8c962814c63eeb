"""The HF backend's shortcuts give exactly what the plain definitions give: the sort-free nucleus check and
the stop-string pre-filter."""
import pytest
import torch

from test_generate import rows_by_key, write_tiny_setup


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny random model of test_generate and its problems, built once for the module (the model does not
    depend on the sampling settings, which each test passes to the backend itself)."""
    return write_tiny_setup(tmp_path_factory.mktemp("tiny"))


def tiny_backend(config, options):
    """A fresh HF backend on the tiny random model, with the given sampling options."""
    from pipeline.generate.backends.hf import load
    from pipeline.config import load_config

    family = load_config(config).family()
    return load(family.model_location(family.checkpoints[0]), options)


def random_logits(rows: int, vocab: int, scale: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, vocab, generator=g) * scale


@pytest.mark.parametrize("top_p", [0.1, 0.5, 0.9, 0.95, 0.999])
@pytest.mark.parametrize("scale", [0.1, 1.0, 5.0, 30.0])  # flat to peaked distributions
def test_nucleus_shortcut_picks_the_sorted_definitions_token(top_p, scale):
    from pipeline.generate.backends.hf import _nucleus_race, sample_rows

    logits = random_logits(256, 300, scale, seed=int(scale * 10))
    noise = torch.empty(256, 300).exponential_(generator=torch.Generator().manual_seed(1))
    probs = torch.softmax(logits, dim=-1)
    assert torch.equal(sample_rows(logits, noise, 1.0, top_p), _nucleus_race(probs, noise, top_p))


def test_nucleus_shortcut_with_tied_probabilities():
    # equal logits: which tied token the sort ranks first decides membership, so no row may use the shortcut
    from pipeline.generate.backends.hf import _nucleus_race, sample_rows

    logits = torch.zeros(64, 10)
    logits[:, :3] = 2.0
    noise = torch.empty(64, 10).exponential_(generator=torch.Generator().manual_seed(3))
    assert torch.equal(sample_rows(logits, noise, 1.0, 0.5), _nucleus_race(torch.softmax(logits, -1), noise, 0.5))


@pytest.mark.parametrize("stops", [
    ("e",), ("\n#", "\ndef", "a"), ("\nclass", "\ndef", "\n#", "\nif", "\nprint", "n"), ("):", "re", "et", "ur"),
])  # each set has a stop that a random model hits, so rows stop at varied steps
def test_stop_prefilter_changes_no_completion(tiny, stops):
    from pipeline.generate.backends import Request, SamplingOptions
    from pipeline.problems import load_problems

    backend = tiny_backend(tiny, SamplingOptions(1.0, 1.0, 24, stops, 8))
    problems = load_problems(tiny.parent / "problems.jsonl")
    requests = [Request(t, i, p["prompt"], 1000 * i + len(t)) for t, p in problems.items() for i in range(6)]
    results = {}
    for prefilter in (True, False):
        if not prefilter:
            backend.may_stop = None  # every row's window decoded every step: the definition
        else:
            assert backend.may_stop is not None and not all(backend.may_stop)
        results[prefilter] = {(r.task_id, r.sample_index): (c.text, c.finish_reason, c.n_tokens)
                              for chunk in backend.generate(requests) for r, c in chunk}
    assert results[True] == results[False]
    assert {reason for _, reason, _ in results[True].values()} == {"stop", "length"}


def test_a_stop_ending_in_a_space_disables_the_prefilter(tiny):
    from pipeline.generate.backends import SamplingOptions

    assert tiny_backend(tiny, SamplingOptions(1.0, 1.0, 8, ("\nif ",), 4)).may_stop is None


def test_the_generated_file_is_unchanged_by_the_shortcuts(tiny, tmp_path):
    # top_p 0.95 and stops ("e", "\n#") exercise both shortcuts; the file equals one made without them
    from pipeline.generate.backends import hf
    from pipeline.config import load_config
    from pipeline.generate.stage import generate_checkpoint
    from pipeline.problems import load_problems

    family = load_config(tiny).family()
    problems = load_problems(tiny.parent / "problems.jsonl")
    generate_checkpoint(family, family.checkpoints[0], problems, tmp_path / "fast.jsonl")
    slow = pytest.MonkeyPatch()
    try:
        slow.setattr(hf, "stop_candidates", lambda *args: None)
        slow.setattr(hf, "sample_rows", lambda logits, noise, t, p: hf._nucleus_race(
            torch.softmax(logits / t, dim=-1), noise, p) if t > 0 else logits.argmax(-1))
        generate_checkpoint(family, family.checkpoints[0], problems, tmp_path / "slow.jsonl")
    finally:
        slow.undo()
    assert rows_by_key(tmp_path / "fast.jsonl") == rows_by_key(tmp_path / "slow.jsonl")


@pytest.mark.parametrize("stops", [("\nclass", "\ndef", "\n#", "\nif", "\nprint"), ("):", "re", "et", "urn", "n(")])
def test_every_token_that_completes_a_stop_after_another_is_a_candidate(tiny, stops):
    # exhaustive over token pairs: if appending b to a makes a stop appear, b must be a candidate
    from pipeline.generate.backends import SamplingOptions

    backend = tiny_backend(tiny, SamplingOptions(1.0, 1.0, 8, stops, 4))
    vocab = range(len(backend.tokenizer))
    alone = backend._decode_windows([[a] for a in vocab])
    completing = set()
    for a in vocab:
        pairs = backend._decode_windows([[a, b] for b in vocab])
        completing |= {b for b, text in zip(vocab, pairs) if any(s in text and s not in alone[a] for s in stops)}
    assert completing, "the stop set should be completed by some pair"
    assert all(backend.may_stop[b] for b in completing)
    assert not all(backend.may_stop), "a filter that keeps every token saves nothing"


def test_a_batch_needing_more_prompts_than_the_kv_store_keeps_is_served(tiny):
    # the prompt-KV store keeps about 8 prompts; a batch of 12 with 3 already stored once lost a stored one to
    # eviction before using it (KeyError on the H200 check); completions must equal a fresh backend's
    from pipeline.generate.backends import Request, SamplingOptions
    from pipeline.problems import load_problems

    options = SamplingOptions(1.0, 1.0, 6, (), 64)
    backend = tiny_backend(tiny, options)
    base = next(iter(load_problems(tiny.parent / "problems.jsonl").values()))["prompt"]
    requests = [Request(f"t{k}", 0, f"# variant {k}\n{base}", 17 + k) for k in range(12)]

    def texts(b, reqs):
        return {r.task_id: c.text for chunk in b.generate(reqs) for r, c in chunk}

    texts(backend, requests[:3])
    assert texts(backend, requests[::-1]) == texts(tiny_backend(tiny, options), requests[::-1])
