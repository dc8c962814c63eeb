"""vLLM backend (``pip install 'capforecast[vllm]'``, GPU only): one ``LLM.generate`` per chunk of requests.

Each request is its own ``SamplingParams(n=1, seed=<the sample's seed>)``, so a sample does not depend on
which others share its call; requests are ordered by prompt so prefix caching shares each prompt's KV.
Set ``VLLM_BATCH_INVARIANT=1`` (vLLM >= 0.11) for logits that do not depend on batch composition; the
setting is recorded in the engine info. Large checkpoints: ``sampling.tensor_parallel_size`` > 1.
"""
from __future__ import annotations

import importlib.util
import os
from typing import Iterable, Iterator

import vllm
from vllm import LLM, SamplingParams

from pipeline.generate.backends import Completion, Request, SamplingOptions

CHUNK = 8192  # requests per LLM.generate call: bounds the work an interruption can lose


def describe(options: SamplingOptions) -> dict:
    import torch

    return {"name": "vllm", "version": vllm.__version__, "torch": torch.__version__,
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
            "dtype": options.dtype, "tensor_parallel_size": options.tensor_parallel_size,
            "batch_invariance": f"VLLM_BATCH_INVARIANT={os.environ.get('VLLM_BATCH_INVARIANT', '0')}",
            "sampler": "vLLM per-request seeded generator (SamplingParams.seed)"}


def load(model: str, options: SamplingOptions, *, revision: str | None = None) -> "VLLMBackend":
    if importlib.util.find_spec("flashinfer") is None:
        # vLLM 0.26 imports flashinfer to decide whether its sampler may use it, even when it is absent; the
        # flag makes it take its own top-p/top-k path instead of failing at engine start (seen on an H200)
        os.environ.setdefault("VLLM_USE_FLASHINFER_SAMPLER", "0")
    llm = LLM(model=model, revision=revision, tokenizer_revision=revision,
              dtype="auto" if options.dtype == "auto" else options.dtype,
              tensor_parallel_size=options.tensor_parallel_size, enable_prefix_caching=True, seed=0)
    return VLLMBackend(llm, options)


class VLLMBackend:
    """All requests of a checkpoint shard go through LLM.generate, chunked only for resumability."""

    def __init__(self, llm, options: SamplingOptions):
        self.llm, self.options = llm, options

    def engine_info(self) -> dict:
        info = describe(self.options)
        info["dtype"] = str(self.llm.llm_engine.model_config.dtype).removeprefix("torch.")
        return info

    def params(self, seed: int) -> SamplingParams:
        o = self.options
        return SamplingParams(n=1, seed=seed, temperature=o.temperature, top_p=o.top_p, max_tokens=o.max_new_tokens,
                              stop=list(o.stop) or None, include_stop_str_in_output=True)

    def generate(self, requests: Iterable[Request]) -> Iterator[list[tuple[Request, Completion]]]:
        ordered = sorted(requests, key=lambda r: (r.prompt, r.sample_index))
        for start in range(0, len(ordered), CHUNK):
            chunk = ordered[start:start + CHUNK]
            outputs = self.llm.generate([r.prompt for r in chunk], [self.params(r.seed) for r in chunk],
                                        use_tqdm=False)
            results = []
            for req, out in zip(chunk, outputs):
                best = out.outputs[0]
                reason = "length" if best.finish_reason == "length" else "stop"
                results.append((req, Completion(best.text, reason, len(best.token_ids), len(out.prompt_token_ids))))
            yield results
