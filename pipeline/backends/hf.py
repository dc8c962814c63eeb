"""Transformers backend: our own KV-cached decoding loop with a per-row seeded sampler.

Why not ``model.generate``: its sampler draws from one global RNG, so a sample depends on its batch
neighbours, and it keeps computing rows that already hit a stop string. Here each row has its own
``torch.Generator`` seeded from the sample key and draws its exponential noise in fixed blocks of steps
(``argmax(p / E)``, E ~ Exp(1), is an exact draw from p), so a row's tokens depend only on its prompt and
seed. Each prompt is prefilled once and its KV cache fanned out to its samples; rows that hit a stop
string or the end-of-text token leave the batch (cache rows dropped: at once on a CPU, in groups on a GPU).
"""
from __future__ import annotations

import inspect
import time
from typing import Iterable, Iterator

import torch

from pipeline.backends import Completion, Request, SamplingOptions


def pick_device_dtype(dtype: str = "auto") -> tuple[str, torch.dtype]:
    """CUDA with bfloat16 when a GPU is present, else CPU with float32; an explicit dtype wins."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype != "auto":
        return device, getattr(torch, dtype)
    if device == "cuda":
        return device, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return device, torch.float32


def describe(options: SamplingOptions) -> dict:
    import transformers

    device, dtype = pick_device_dtype(options.dtype)
    info = {"name": "transformers", "version": transformers.__version__, "torch": torch.__version__,
            "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
            "dtype": str(dtype).removeprefix("torch."),
            "sampler": "per-row torch.Generator exponential race argmax(p / E), noise drawn in blocks of steps",
            "batch_invariance": ("float32: per-row seeds, completions identical across batch sizes and orders "
                                 "(CPU tests; 164/164 on an H200 with TF32 off)" if dtype == torch.float32 else
                                 f"{str(dtype).removeprefix('torch.')} logits depend on the batch shape, so a key's "
                                 "completion can change with batch size (0/164 identical on an H200); "
                                 "set sampling.dtype: float32 for per-sample reproducibility"),
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled()}
    if device == "cuda":
        info["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
    return info


def load(model: str, options: SamplingOptions, *, revision: str | None = None) -> "HFBackend":
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device, dtype = pick_device_dtype(options.dtype)
    tokenizer = AutoTokenizer.from_pretrained(model, revision=revision)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    import transformers

    key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    lm = AutoModelForCausalLM.from_pretrained(model, revision=revision, **{key: dtype}).to(device).eval()
    return HFBackend(lm, tokenizer, options)


class HFBackend:
    """Batched sampling over many prompts and samples, reproducible per request seed."""

    def __init__(self, model, tokenizer, options: SamplingOptions):
        self.model, self.tokenizer, self.options = model, tokenizer, options
        self.device = next(model.parameters()).device
        eos = model.generation_config.eos_token_id if model.generation_config else None
        eos = eos if eos is not None else tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
        self.stop = tuple(s for s in options.stop if s)
        self.window = max((len(s.encode("utf-8")) for s in self.stop), default=0) + 1
        self.stats = {"forward_rows": 0, "tokens": 0, "seconds": 0.0}
        # CPU: compute scales with rows, drop a finished row at once; GPU: a step costs about the same for
        # any row count, so keep finished rows until an eighth of the batch has finished (fewer cache copies
        # and fewer distinct shapes)
        self.compact_at = 0.0 if self.device.type == "cpu" else 0.125
        params = inspect.signature(model.forward).parameters
        self.cache_kwarg = "cache" if "cache" in params else "past_key_values"  # renamed in transformers 5.2x

    def engine_info(self) -> dict:
        info = describe(self.options)
        info["dtype"] = str(next(self.model.parameters()).dtype).removeprefix("torch.")
        return info

    def generate(self, requests: Iterable[Request]) -> Iterator[list[tuple[Request, Completion]]]:
        """Yield one list of results per batch; samples of a prompt share a batch (and its prefill)."""
        for batch in plan_batches(list(requests), self.options.batch_size, self._prompt_len):
            start = time.perf_counter()
            results = self.generate_batch(batch)
            self.stats["seconds"] += time.perf_counter() - start
            yield results

    def _prompt_len(self, prompt: str) -> int:
        return len(prompt)

    @torch.inference_mode()
    def generate_batch(self, batch: list[Request]) -> list[tuple[Request, Completion]]:
        """Sample every request of the batch to a stop sequence, end of text or max_new_tokens."""
        from transformers import DynamicCache

        prompts = list(dict.fromkeys(r.prompt for r in batch))
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True).to(self.device)
        mask = enc["attention_mask"]
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        out = self.model(input_ids=enc["input_ids"], attention_mask=mask, position_ids=positions,
                         use_cache=True, logits_to_keep=1, **{self.cache_kwarg: cache})
        self.stats["forward_rows"] += len(prompts)
        fan = torch.tensor([prompts.index(r.prompt) for r in batch], device=self.device)
        cache.batch_select_indices(fan)
        logits = out.logits[:, -1, :].float()[fan]
        mask, position = mask[fan], positions[fan, -1]
        prompt_tokens = mask.sum(-1).tolist()
        generators = [torch.Generator(device=self.device).manual_seed(r.seed) for r in batch]
        block = noise_block_steps(logits.shape[-1])
        noise = None
        tokens: list[list[int]] = [[] for _ in batch]
        finish: list[str | None] = [None] * len(batch)
        rows = list(range(len(batch)))  # requests whose rows are in the batch tensors (some may have finished)
        for step in range(self.options.max_new_tokens):
            if step % block == 0 and self.options.temperature > 0:  # every row in the batch is at this step
                noise = draw_noise([generators[i] for i in rows], block, logits.shape[-1], self.device)
            chosen = sample_rows(logits, None if noise is None else noise[:, step % block],
                                 self.options.temperature, self.options.top_p)
            alive = self._advance(rows, chosen.tolist(), tokens, finish, step)
            if not alive:
                break
            if len(rows) - len(alive) > self.compact_at * len(rows):  # drop finished rows (cache included)
                index = torch.tensor(alive, device=self.device)
                cache.batch_select_indices(index)
                chosen, mask, position = chosen[index], mask[index], position[index]
                noise = None if noise is None else noise[index]
                rows = [rows[j] for j in alive]
            mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
            position = position + 1
            out = self.model(input_ids=chosen[:, None], attention_mask=mask, position_ids=position[:, None],
                             use_cache=True, **{self.cache_kwarg: cache})
            self.stats["forward_rows"] += len(rows)
            logits = out.logits[:, -1, :].float()
        texts = self.tokenizer.batch_decode(tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        return [(r, Completion(texts[i], finish[i] or "length", len(tokens[i]), int(prompt_tokens[i])))
                for i, r in enumerate(batch)]

    def _decode_windows(self, windows: list[list[int]]) -> list[str]:
        """Decode the last few tokens of many rows; straight through the Rust tokenizer when there is one."""
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None:
            return backend.decode_batch(windows, skip_special_tokens=True)
        return self.tokenizer.batch_decode(windows, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def _advance(self, rows: list[int], chosen: list[int], tokens, finish, step: int) -> list[int]:
        """Append each unfinished row's token; return positions (in ``rows``) of rows still going."""
        going = [(row, token) for row, token in zip(rows, chosen) if finish[row] is None]
        for row, token in going:
            tokens[row].append(token)
            if token in self.eos_ids:  # kept for the token count; skipped when decoding
                finish[row] = "stop"
        self.stats["tokens"] += len(going)
        if self.stop:
            check = [row for row, _ in going if finish[row] is None]
            windows = self._decode_windows([tokens[row][-self.window:] for row in check])
            for row, text in zip(check, windows):
                if any(s in text for s in self.stop):
                    finish[row] = "stop"
        if step + 1 == self.options.max_new_tokens:
            return []
        return [j for j, row in enumerate(rows) if finish[row] is None]


def noise_block_steps(vocab: int) -> int:
    """Steps of noise a row draws per generator call: fewer kernel launches; fixed per vocabulary size."""
    return max(1, min(16, 2 ** 21 // vocab))


def draw_noise(generators: list, steps: int, vocab: int, device) -> torch.Tensor:
    """Exp(1) noise of shape (rows, steps, vocab), each row from its own generator."""
    return torch.stack([torch.empty(steps, vocab, device=device).exponential_(generator=g) for g in generators])


def sample_rows(logits: torch.Tensor, noise: torch.Tensor | None, temperature: float, top_p: float) -> torch.Tensor:
    """One token per row: greedy at temperature 0, else top-p sampling driven by the row's own noise.

    The exponential race ``argmax(p_i / E_i)`` with E_i ~ Exp(1) picks token i with probability p_i; a row's
    noise comes from its own generator, so its token does not depend on what else is in the batch.
    """
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        better = sorted_probs.cumsum(dim=-1) - sorted_probs  # mass of the tokens ranked above each one
        probs = probs.masked_fill(torch.zeros_like(probs, dtype=torch.bool).scatter(-1, order, better >= top_p), 0)
    return (probs / noise).argmax(dim=-1)


def plan_batches(requests: list[Request], batch_size: int, prompt_len) -> list[list[Request]]:
    """Group requests so the samples of a prompt stay together, prompts of similar length share a batch."""
    by_prompt: dict[str, list[Request]] = {}
    for r in requests:
        by_prompt.setdefault(r.prompt, []).append(r)
    ordered = sorted(by_prompt.values(), key=lambda rs: prompt_len(rs[0].prompt))
    batches, current = [], []
    for group in ordered:
        for r in group:
            current.append(r)
            if len(current) == batch_size:
                batches.append(current)
                current = []
    if current:
        batches.append(current)
    return batches
