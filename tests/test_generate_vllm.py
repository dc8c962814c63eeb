"""vLLM backend: lazily imported; on a GPU with vllm installed, same key -> same completion."""
import importlib.util

import pytest

from pipeline.generate.backends import Request, SamplingOptions


def _why_no_vllm() -> str | None:
    try:
        import torch
        if not torch.cuda.is_available():
            return "no CUDA GPU on this machine (vLLM needs one); scripts/gpu_check.sh runs it on a GPU host"
    except ImportError:
        return "torch is not installed"
    if importlib.util.find_spec("vllm") is None:
        return "vllm is not installed (pip install 'capforecast[vllm]')"
    return None


def test_vllm_module_is_only_imported_when_chosen():
    import subprocess
    import sys

    code = ("import sys; from pipeline.generate.backends import BACKENDS; import pipeline.generate.stage; "
            "print('pipeline.generate.backends.vllm' in sys.modules, 'vllm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.gpu
@pytest.mark.skipif(_why_no_vllm() is not None, reason=str(_why_no_vllm()))
def test_vllm_same_key_same_completion_across_batches(tmp_path):
    from pipeline.generate.backends import load_backend
    from test_generate import PROMPTS, write_tiny_setup

    config = write_tiny_setup(tmp_path / "fam")
    options = SamplingOptions(1.0, 0.95, 16, ("\n#",), 8)
    backend = load_backend("vllm", str(config.parent / "small"), options)
    requests = [Request(f"T/{i}", j, p, 1_000_003 * i + 7919 * j + 17) for i, p in enumerate(PROMPTS) for j in range(4)]
    together = {(r.task_id, r.sample_index): c.text for batch in backend.generate(requests) for r, c in batch}
    alone = {(r.task_id, r.sample_index): c.text for req in requests[::-3] for batch in backend.generate([req])
             for r, c in batch}
    assert all(alone[k] == together[k] for k in alone)


class _FakeEngine:
    """Stands in for vllm.LLM with the signatures of vLLM 0.33.0 (checked against the wheel's source):
    a completion is a pure function of (prompt, seed), as vLLM's per-request seeded generator makes it."""

    def __init__(self, model, *, revision=None, tokenizer_revision=None, dtype="auto", tensor_parallel_size=1,
                 seed=0, **engine_args):
        self.init = dict(model=model, revision=revision, dtype=dtype, tensor_parallel_size=tensor_parallel_size,
                         **engine_args)
        self.calls = []

    def generate(self, prompts, sampling_params=None, *, use_tqdm=True):
        from types import SimpleNamespace as NS

        assert len(prompts) == len(sampling_params)
        self.calls.append((list(prompts), list(sampling_params)))
        outputs = []
        for prompt, params in zip(prompts, sampling_params):
            assert params.n == 1 and params.include_stop_str_in_output
            tokens = list(range(params.seed % 7 + 1))
            reason = "length" if len(tokens) >= params.max_tokens else "stop"
            outputs.append(NS(prompt_token_ids=[0] * len(prompt),
                              outputs=[NS(text=f"{prompt[:4]}|{params.seed}", token_ids=tokens, finish_reason=reason)]))
        return outputs


@pytest.fixture
def fake_vllm(monkeypatch):
    import sys
    import types
    from dataclasses import dataclass

    @dataclass
    class SamplingParams:
        n: int = 1
        temperature: float = 1.0
        top_p: float = 1.0
        seed: int | None = None
        stop: list | None = None
        max_tokens: int | None = 16
        include_stop_str_in_output: bool = False

    module = types.ModuleType("vllm")
    module.__version__, module.LLM, module.SamplingParams = "0.33.0-fake", _FakeEngine, SamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.delitem(sys.modules, "pipeline.generate.backends.vllm", raising=False)
    yield module
    sys.modules.pop("pipeline.generate.backends.vllm", None)


def _requests(shuffle_seed=None):
    import random

    requests = [Request(f"T/{i}", j, f"p{i % 3}-prompt", 1_000 * i + j) for i in range(6) for j in range(5)]
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(requests)
    return requests


@pytest.mark.parametrize("chunk", [1, 4, 8192])
@pytest.mark.parametrize("shuffle_seed", [None, 1, 2])
def test_vllm_adapter_gives_each_request_its_own_seeds_completion(fake_vllm, monkeypatch, chunk, shuffle_seed):
    from pipeline.generate.backends import load_backend

    backend = load_backend("vllm", "/models/m", SamplingOptions(0.8, 0.95, 6, ("\n#",), 64))
    monkeypatch.setattr("pipeline.generate.backends.vllm.CHUNK", chunk)
    results = [pair for batch in backend.generate(_requests(shuffle_seed)) for pair in batch]
    assert sorted((r.task_id, r.sample_index) for r, _ in results) == sorted((r.task_id, r.sample_index)
                                                                            for r in _requests())
    for req, completion in results:
        assert completion.text == f"{req.prompt[:4]}|{req.seed}"
        assert completion.n_tokens == req.seed % 7 + 1 and completion.prompt_tokens == len(req.prompt)
        assert completion.finish_reason == ("length" if completion.n_tokens >= 6 else "stop")


def test_vllm_adapter_passes_the_sampling_settings(fake_vllm):
    from pipeline.generate.backends import load_backend

    backend = load_backend("vllm", "/models/m", SamplingOptions(0.8, 0.95, 6, ("\n#", "\ndef"), 64,
                                                                tensor_parallel_size=2))
    list(backend.generate(_requests(3)))
    assert backend.llm.init["enable_prefix_caching"] and backend.llm.init["tensor_parallel_size"] == 2
    prompts, params = backend.llm.calls[0]
    assert all(p.temperature == 0.8 and p.top_p == 0.95 and p.max_tokens == 6 and p.stop == ["\n#", "\ndef"]
               for p in params)
    assert len({p.seed for p in params}) == len(params)
    assert prompts == sorted(prompts), "requests sharing a prompt go together, so the prefix cache serves them"


def test_vllm_engine_info_records_batch_invariance(fake_vllm, monkeypatch):
    from pipeline.generate.backends import describe_engine

    monkeypatch.setenv("VLLM_BATCH_INVARIANT", "1")
    info = describe_engine("vllm", SamplingOptions(1.0, 1.0, 8, (), 8))
    assert info["name"] == "vllm" and info["version"] == "0.33.0-fake"
    assert info["batch_invariance"] == "VLLM_BATCH_INVARIANT=1"


@pytest.mark.parametrize("flashinfer_installed, preset, expected", [
    (False, None, "0"), (False, "1", "1"), (True, None, None)])
def test_vllm_without_flashinfer_keeps_the_sampler_off_it(fake_vllm, monkeypatch, flashinfer_installed, preset,
                                                           expected):
    # vLLM 0.26.0 on an H200 failed at engine start importing flashinfer for its sampler check when absent
    import importlib.util
    import os

    from pipeline.generate.backends import load_backend

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: (object() if flashinfer_installed else None)
                        if name == "flashinfer" else real(name, *a))
    monkeypatch.setenv("VLLM_USE_FLASHINFER_SAMPLER", preset or "")  # so the test's own setting is undone after
    if preset is None:
        monkeypatch.delenv("VLLM_USE_FLASHINFER_SAMPLER")
    load_backend("vllm", "/models/m", SamplingOptions(1.0, 1.0, 8, (), 8))
    assert os.environ.get("VLLM_USE_FLASHINFER_SAMPLER") == expected
