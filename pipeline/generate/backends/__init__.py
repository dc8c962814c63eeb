"""Generation backends behind one small Protocol; a backend's heavy imports happen only when it is chosen."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Protocol

from pipeline.registry import Lazy, Registry

BACKENDS = Registry("generation backend",
                    {"transformers": Lazy("pipeline.generate.backends.hf"),
                     "vllm": Lazy("pipeline.generate.backends.vllm")},
                    aliases={"hf": "transformers"},
                    missing_hint="for vLLM: pip install 'capforecast[vllm]' on a machine with a GPU")


@dataclass(frozen=True)
class Request:
    """One sample to draw: its prompt and the seed derived from its key."""

    task_id: str
    sample_index: int
    prompt: str
    seed: int


@dataclass(frozen=True)
class Completion:
    """What the engine produced for one request, before cutting at stop sequences."""

    text: str
    finish_reason: str  # "stop" (stop sequence or end-of-text token) or "length"
    n_tokens: int
    prompt_tokens: int


@dataclass(frozen=True)
class SamplingOptions:
    """The sampling settings a backend needs, cut from the family config."""

    temperature: float
    top_p: float
    max_new_tokens: int
    stop: tuple[str, ...]
    batch_size: int
    dtype: str = "auto"
    tensor_parallel_size: int = 1


class GenerationBackend(Protocol):
    """Draws completions; each request's result depends only on its prompt and seed."""

    def generate(self, requests: Iterable[Request]) -> Iterator[list[tuple[Request, Completion]]]:
        """Yield batches of finished (request, completion) pairs, in any order."""
        ...

    def engine_info(self) -> dict:
        """Name, version, device, dtype and batch-invariance setting, for the run manifest."""
        ...


def load_backend(name: str, model: str, options: SamplingOptions, *, revision: str | None = None) -> GenerationBackend:
    """Import the chosen backend's module now (not before) and load the model into it."""
    return BACKENDS[name].load(model, options, revision=revision)


def describe_engine(name: str, options: SamplingOptions) -> dict:
    """Engine info without loading a model (used when a resume finds nothing left to generate)."""
    return BACKENDS[name].describe(options)
