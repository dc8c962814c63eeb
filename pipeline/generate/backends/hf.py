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

from pipeline.generate.backends import Completion, Request, SamplingOptions


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
        vocab = max(model.get_output_embeddings().weight.shape[0], len(tokenizer))
        self.may_stop = stop_candidates(self._decode_windows, len(tokenizer), vocab, self.stop)
        self.stats = {"forward_rows": 0, "tokens": 0, "seconds": 0.0, "prefill_rows": 0, "prefill_tokens": 0}
        # CPU: compute scales with rows, drop a finished row at once; GPU: a step costs about the same for
        # any row count, so keep finished rows until an eighth of the batch has finished (fewer cache copies
        # and fewer distinct shapes)
        self.compact_at = 0.0 if self.device.type == "cpu" else 0.125
        self.block = noise_block_steps(model.get_output_embeddings().weight.shape[0])
        self.refill = True  # set to False when the cache layout does not allow joining rows
        self.prompt_kv: dict[str, tuple] = {}  # prompt -> (keys per layer, values per layer, length, logits)
        params = inspect.signature(model.forward).parameters
        self.cache_kwarg = "cache" if "cache" in params else "past_key_values"  # renamed in transformers 5.2x

    def engine_info(self) -> dict:
        info = describe(self.options)
        info["dtype"] = str(next(self.model.parameters()).dtype).removeprefix("torch.")
        return info

    def generate(self, requests: Iterable[Request]) -> Iterator[list[tuple[Request, Completion]]]:
        """Yield finished (request, completion) pairs in groups; the batch is refilled as rows finish."""
        ordered = [r for batch in plan_batches(list(requests), self.options.batch_size, len) for r in batch]
        start = time.perf_counter()
        for results in self._stream(ordered, self.options.batch_size):
            self.stats["seconds"] += time.perf_counter() - start
            yield results
            start = time.perf_counter()

    def generate_batch(self, batch: list[Request]) -> list[tuple[Request, Completion]]:
        """Sample every request of the batch together (no refill) and return them in request order."""
        done = {id(r): c for chunk in self._stream(list(batch), len(batch)) for r, c in chunk}
        return [(r, done[id(r)]) for r in batch]

    @torch.inference_mode()
    def _stream(self, reqs: list[Request], width: int) -> Iterator[list[tuple[Request, Completion]]]:
        """Continuous batching: up to ``width`` rows decode together; finished rows leave, pending ones join."""
        pending = list(range(len(reqs)))[::-1]  # popped from the end, in order
        tokens: dict[int, list[int]] = {}
        finish: dict[int, str | None] = {}
        state: _Rows | None = None
        finished: list[int] = []
        while pending or (state is not None and state.rows):
            live = 0 if state is None else len(state.rows)
            if pending and (live == 0 or (self.refill and width - live >= max(1, width // 8))):
                if state is not None:
                    state.keep([j for j, row in enumerate(state.rows) if finish[row] is None])
                take = [pending.pop() for _ in range(min(width - len(state.rows if state else []), len(pending)))]
                for i in take:
                    tokens[i], finish[i] = [], None
                new = self._prefill([reqs[i] for i in take], take)
                state = new if state is None or not state.rows else state.join(new)
            self._step(state, reqs, tokens, finish)
            newly = [row for row in state.rows if finish[row] is not None and row not in state.reported]
            state.reported.update(newly)
            finished += newly
            alive = [j for j, row in enumerate(state.rows) if finish[row] is None]
            if len(state.rows) - len(alive) > self.compact_at * len(state.rows) or not alive:
                state.keep(alive)
            if state.rows:
                self._forward(state)
            if len(finished) >= width or (not state.rows and finished):
                yield self._results(reqs, finished, tokens, finish, state.prompt_tokens)
                finished = []

    def _prefill(self, reqs: list[Request], ids: list[int]) -> "_Rows":
        """Rows for new requests from each prompt's KV cache, computed once per prompt and kept for reuse."""
        from transformers import DynamicCache

        prompts = list(dict.fromkeys(r.prompt for r in reqs))
        by_prompt = {p: self.prompt_kv[p] for p in prompts if p in self.prompt_kv}  # taken before encoding evicts
        by_prompt.update(self._encode_prompts([p for p in prompts if p not in by_prompt]))
        length = max(by_prompt[p][2] for p in prompts)
        stored = [by_prompt[r.prompt] for r in reqs]
        cache = DynamicCache()
        for layer in range(len(stored[0][0])):
            cache.update(torch.cat([_left_pad(kv[0][layer], length) for kv in stored]),
                         torch.cat([_left_pad(kv[1][layer], length) for kv in stored]), layer)
        lengths = torch.tensor([kv[2] for kv in stored], device=self.device)
        mask = (torch.arange(length, device=self.device)[None, :] >= (length - lengths)[:, None]).long()
        logits = torch.stack([kv[3] for kv in stored])
        self.refill = self.refill and _layers(cache) is not None
        rows = _Rows(list(ids), cache, mask, lengths - 1, logits, self.block)
        rows.generators = {i: torch.Generator(device=self.device).manual_seed(r.seed) for i, r in zip(ids, reqs)}
        rows.prompt_tokens = dict(zip(ids, lengths.tolist()))
        return rows

    def _encode_prompts(self, prompts: list[str]) -> dict[str, tuple]:
        """Prefill prompts (left padded together); return and keep each one's keys, values, length, last logits."""
        from transformers import DynamicCache

        if not prompts:
            return {}
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True).to(self.device)
        mask = enc["attention_mask"]
        cache = DynamicCache()
        out = self.model(input_ids=enc["input_ids"], attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                         use_cache=True, logits_to_keep=1, **{self.cache_kwarg: cache})
        self.stats["prefill_rows"] += len(prompts)
        self.stats["prefill_tokens"] += int(mask.sum())
        keys, values = _cache_tensors(cache)
        while len(self.prompt_kv) + len(prompts) > max(8, len(prompts)):  # keep the few most recent prompts
            self.prompt_kv.pop(next(iter(self.prompt_kv)))
        for j, prompt in enumerate(prompts):
            n = int(mask[j].sum())
            self.prompt_kv[prompt] = ([k[j:j + 1, :, -n:] for k in keys], [v[j:j + 1, :, -n:] for v in values], n,
                                      out.logits[j, -1, :].float())
        return {p: self.prompt_kv[p] for p in prompts}

    def _step(self, state: "_Rows", reqs, tokens, finish) -> None:
        """Sample one token for every row; record it for rows still going."""
        noise = None
        if self.options.temperature > 0:
            fresh = [j for j, row in enumerate(state.rows) if finish[row] is None and len(tokens[row]) % self.block == 0]
            if fresh:
                state.noise[fresh] = draw_noise([state.generators[state.rows[j]] for j in fresh], self.block,
                                                state.logits.shape[-1], self.device)
            phase = torch.tensor([len(tokens[row]) % self.block for row in state.rows], device=self.device)
            noise = state.noise[torch.arange(len(state.rows), device=self.device), phase]
        state.chosen = sample_rows(state.logits, noise, self.options.temperature, self.options.top_p)
        self._advance(state.rows, state.chosen.tolist(), tokens, finish)

    def _forward(self, state: "_Rows") -> None:
        state.mask = torch.cat([state.mask, state.mask.new_ones(len(state.rows), 1)], dim=1)
        state.position = state.position + 1
        out = self.model(input_ids=state.chosen[:, None], attention_mask=state.mask,
                         position_ids=state.position[:, None], use_cache=True, **{self.cache_kwarg: state.cache})
        self.stats["forward_rows"] += len(state.rows)
        state.logits = out.logits[:, -1, :].float()

    def _results(self, reqs, rows: list[int], tokens, finish, prompt_tokens) -> list[tuple[Request, Completion]]:
        texts = self.tokenizer.batch_decode([tokens[i] for i in rows], skip_special_tokens=True,
                                            clean_up_tokenization_spaces=False)
        return [(reqs[i], Completion(text, finish[i], len(tokens[i]), int(prompt_tokens[i])))
                for i, text in zip(rows, texts)]

    def _decode_windows(self, windows: list[list[int]]) -> list[str]:
        """Decode the last few tokens of many rows; straight through the Rust tokenizer when there is one."""
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None:
            return backend.decode_batch(windows, skip_special_tokens=True)
        return self.tokenizer.batch_decode(windows, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def _advance(self, rows: list[int], chosen: list[int], tokens, finish) -> None:
        """Append each unfinished row's token; mark rows that hit end of text, a stop string or the length."""
        going = [(row, token) for row, token in zip(rows, chosen) if finish[row] is None]
        for row, token in going:
            tokens[row].append(token)
            if token in self.eos_ids:  # kept for the token count; skipped when decoding
                finish[row] = "stop"
        self.stats["tokens"] += len(going)
        if self.stop:
            may_stop = self.may_stop
            check = [row for row, token in going if finish[row] is None and (may_stop is None or may_stop[token])]
            windows = self._decode_windows([tokens[row][-self.window:] for row in check])
            for row, text in zip(check, windows):
                if any(s in text for s in self.stop):
                    finish[row] = "stop"
        for row, _ in going:
            if finish[row] is None and len(tokens[row]) >= self.options.max_new_tokens:
                finish[row] = "length"


def stop_candidates(decode, known: int, vocab: int, stops: tuple[str, ...]) -> list[bool] | None:
    """Per token id below vocab: can a stop string newly appear when this token is appended? None: check all.

    A stop string that newly appears ends inside the newest token: it lies within the token's text, or the
    text starts with a proper suffix of it. A token's text alone differs from its text in context at most
    by a leading space (SentencePiece, WordPiece) or by byte fragments of a multi-byte character (shown as
    U+FFFD), so both spellings are tried, fragments are always candidates, and no token is ruled out when
    a stop ends in a space. Rows whose newest token is not a candidate skip the decode; the others get
    the full-window check, so the decision is the same as checking every row. ``decode`` turns lists of
    ids into texts; ids from ``known`` (the tokenizer's size) up to ``vocab`` have no text: candidates.
    """
    if not stops or any(stop.endswith(" ") for stop in stops):
        return None
    suffixes = tuple({stop[j:] for stop in stops for j in range(1, len(stop))})

    def candidate(text: str) -> bool:
        if not text or "\ufffd" in text:
            return True
        return any(form.startswith(suffixes) or any(stop in form for stop in stops) for form in (text, " " + text))

    return [candidate(text) for text in decode([[i] for i in range(known)])] + [True] * (vocab - known)


class _Rows:
    """The rows decoding together: their KV cache, attention mask, positions, next-token logits and noise."""

    def __init__(self, rows, cache, mask, position, logits, block):
        self.rows, self.cache, self.mask, self.position, self.logits = rows, cache, mask, position, logits
        self.noise = torch.ones(len(rows), block, logits.shape[-1], device=logits.device)
        self.generators: dict = {}
        self.prompt_tokens: dict = {}
        self.reported: set = set()
        self.chosen = None

    def keep(self, index: list[int]) -> None:
        """Drop every row not in index (cache included) and trim columns that are padding in every row."""
        if len(index) < len(self.rows):
            at = torch.tensor(index, dtype=torch.long, device=self.mask.device)
            self.cache.batch_select_indices(at)
            self.mask, self.position, self.logits, self.noise = (t[at] for t in (self.mask, self.position,
                                                                                 self.logits, self.noise))
            self.chosen = None if self.chosen is None else self.chosen[at]
            self.rows = [self.rows[j] for j in index]
        layers = _layers(self.cache)
        if self.rows and layers is not None:
            lead = int((self.mask.sum(0) == 0).long().cumprod(0).sum())
            if lead:
                self.mask = self.mask[:, lead:]
                for layer in layers:
                    layer.keys, layer.values = layer.keys[:, :, lead:], layer.values[:, :, lead:]

    def join(self, other: "_Rows") -> "_Rows":
        """Append other's rows, left-padding the shorter cache so that both have the same length."""
        length = max(self.mask.shape[1], other.mask.shape[1])
        for mine, theirs in zip(_layers(self.cache), _layers(other.cache)):
            mine.keys = torch.cat([_left_pad(mine.keys, length), _left_pad(theirs.keys, length)])
            mine.values = torch.cat([_left_pad(mine.values, length), _left_pad(theirs.values, length)])
        self.mask = torch.cat([_left_pad(self.mask, length, dim=1), _left_pad(other.mask, length, dim=1)])
        self.position = torch.cat([self.position, other.position])
        self.logits = torch.cat([self.logits, other.logits])
        self.noise = torch.cat([self.noise, other.noise])
        self.rows += other.rows
        self.generators.update(other.generators)
        self.prompt_tokens.update(other.prompt_tokens)
        return self


def _cache_tensors(cache) -> tuple[list, list]:
    """Per-layer key and value tensors of a filled cache, whatever the transformers version."""
    layers = _layers(cache)
    if layers is not None:
        return [layer.keys for layer in layers], [layer.values for layer in layers]
    return list(cache.key_cache), list(cache.value_cache)


def _layers(cache):
    """The cache's per-layer objects with .keys/.values (transformers >= 4.56), else None (no refill)."""
    layers = getattr(cache, "layers", None)
    if not layers or not all(hasattr(layer, "keys") and hasattr(layer, "values") for layer in layers):
        return None
    return layers


def _left_pad(t: torch.Tensor, length: int, dim: int = 2) -> torch.Tensor:
    missing = length - t.shape[dim]
    if missing == 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim=dim)


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
    choice = (probs / noise).argmax(dim=-1)
    if top_p >= 1.0:
        return choice
    # The race's winner over the whole vocabulary is also the winner within the nucleus whenever it lies
    # inside it, which a compare-and-sum shows without sorting: the mass of every other token at least as
    # likely is clearly below top_p. Only the other rows (~1 - top_p of them) are sorted, so the result is
    # the sorted nucleus's in every row.
    p_choice = probs.gather(-1, choice[:, None])
    above = (probs * (probs >= p_choice)).sum(dim=-1) - p_choice[:, 0]
    unsure = (above >= top_p - NUCLEUS_MARGIN).nonzero()[:, 0]
    if len(unsure):
        choice[unsure] = _nucleus_race(probs[unsure], noise[unsure], top_p)
    return choice


NUCLEUS_MARGIN = 1e-4  # above float32 summation error over a vocabulary, so no row is misjudged kept


def _nucleus_race(probs: torch.Tensor, noise: torch.Tensor, top_p: float) -> torch.Tensor:
    """The race restricted to the top-p nucleus, found by sorting (the definition)."""
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
