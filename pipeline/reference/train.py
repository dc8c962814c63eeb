"""The recipe that trains the reference family: separately trained tiny Llamas, fixed seeds, one card each."""
from __future__ import annotations

import itertools
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from pipeline.reference.corpus import CORPUS_SEED, training_documents

TOKENIZER_SEED = 99
TOKENIZER_DOCUMENTS = 20000


@dataclass(frozen=True)
class Member:
    """One checkpoint of the family: its shape and how many optimizer steps it trains for."""

    name: str
    hidden: int
    layers: int
    heads: int
    intermediate: int
    steps: int


@dataclass(frozen=True)
class Recipe:
    """Everything that determines the family; recorded in every card."""

    members: tuple[Member, ...]
    seq_len: int = 256
    batch_size: int = 4  # small batches: tiny models learn per step, and a CPU step's cost is per token anyway
    lr: float = 5e-3  # peak learning rate of a hidden-32 model; scaled by sqrt(32 / hidden) (member_lr)
    min_lr_ratio: float = 0.1
    warmup_fraction: float = 0.05
    weight_decay: float = 0.1
    seed: int = 0
    threads: int = 1  # one thread: on a shared 2-core machine two threads lose more to waiting than they gain
    corpus_seed: int = CORPUS_SEED
    vocab_size: int = 512

    def member_lr(self, member: Member) -> float:
        """Peak learning rate of a member: wider models take smaller steps."""
        return self.lr * math.sqrt(32 / member.hidden)

    def tokens(self, member: Member) -> int:
        """Training tokens D of a member (every step sees batch_size x seq_len tokens)."""
        return member.steps * self.batch_size * self.seq_len


# Separately trained members, each on ~40 tokens per parameter (steps = 40·N / 1024; the largest 42), so compute
# 6·N·D ~ 240·N² spreads over 150x. The default family (checkpoints.yaml: reference) is ref-132k and up, with
# ref-714k the forecast target and the four members with at most 1/5 of its compute the fit set; the three
# smallest sit before the compute where the models learn to read a docstring (reference-full shows them).
FAMILY = Recipe(members=(
    Member("ref-059k", 40, 2, 4, 108, 2320),
    Member("ref-080k", 48, 2, 4, 128, 3129),
    Member("ref-104k", 56, 2, 4, 148, 4053),
    Member("ref-132k", 64, 2, 4, 172, 5152),
    Member("ref-181k", 64, 3, 4, 172, 7088),
    Member("ref-216k", 72, 3, 4, 180, 8446),
    Member("ref-274k", 80, 3, 4, 216, 10697),
    Member("ref-492k", 96, 4, 4, 256, 19234),
    Member("ref-714k", 96, 6, 4, 256, 29300),
))

# A reduced setting for CI: same code path, two very small members, seconds of training.
TINY = Recipe(members=(Member("tiny-a", 16, 1, 2, 40, 12), Member("tiny-b", 24, 1, 2, 64, 24)),
              seq_len=64, batch_size=8)


def model_config(member: Member, recipe: Recipe):
    """The transformers LlamaConfig of a member (tied embeddings, byte-level BPE vocabulary)."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=recipe.vocab_size, hidden_size=member.hidden, num_hidden_layers=member.layers,
                       num_attention_heads=member.heads, num_key_value_heads=member.heads,
                       intermediate_size=member.intermediate, max_position_embeddings=recipe.seq_len,
                       tie_word_embeddings=True, bos_token_id=0, eos_token_id=0, pad_token_id=0)


def count_params(member: Member, recipe: Recipe) -> int:
    """Total parameters N of a member (tied embedding counted once), as the cards record them."""
    h, f, v = member.hidden, member.intermediate, recipe.vocab_size
    return v * h + member.layers * (4 * h * h + 3 * h * f + 2 * h) + h


def build_tokenizer(recipe: Recipe):
    """The family's tokenizer, trained on documents drawn with TOKENIZER_SEED (not the training stream)."""
    from pipeline.reference.tokenizer import train_tokenizer

    docs = [text for _, text in itertools.islice(training_documents(seed=TOKENIZER_SEED), TOKENIZER_DOCUMENTS)]
    return train_tokenizer(docs, recipe.vocab_size)


def token_stream(tokenizer, total: int, seed: int):
    """The first ``total`` tokens of the training stream: documents joined by end-of-text, as a tensor."""
    import torch

    ids: list[int] = []
    docs = training_documents(seed=seed)
    while len(ids) < total:
        chunk = [text for _, text in itertools.islice(docs, 4096)]
        for row in tokenizer(chunk)["input_ids"]:
            ids.extend(row)
            ids.append(tokenizer.eos_token_id)
    return torch.tensor(ids[:total], dtype=torch.long)


def learning_rate(step: int, total: int, recipe: Recipe, peak: float) -> float:
    """Linear warmup, then cosine decay to min_lr_ratio x peak."""
    warmup = max(1, int(recipe.warmup_fraction * total))
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (recipe.min_lr_ratio + (1 - recipe.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def train_member(member: Member, recipe: Recipe, stream, tokenizer, out_dir: Path, log=print) -> dict:
    """Train one member from scratch on the stream's prefix; save weights, tokenizer and card; return the card."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(recipe.seed)
    model = LlamaForCausalLM(model_config(member, recipe))
    params = sum(p.numel() for p in model.parameters())
    assert params == count_params(member, recipe), (params, count_params(member, recipe))
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": recipe.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=recipe.lr, betas=(0.9, 0.95))
    tokens = recipe.tokens(member)
    batches = stream[:tokens].view(member.steps, recipe.batch_size, recipe.seq_len)
    losses, start = [], time.time()
    model.train()
    for step in range(member.steps):
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, member.steps, recipe, recipe.member_lr(member))
        loss = model(input_ids=batches[step], labels=batches[step]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if (step + 1) % max(1, member.steps // 5) == 0:
            log(f"  {member.name}: step {step + 1}/{member.steps}, loss {sum(losses[-50:]) / len(losses[-50:]):.4f}, "
                f"{time.time() - start:.0f} s")
    tail = losses[-max(1, member.steps // 20):]
    card = {
        "name": member.name,
        "params": params,
        "tokens": tokens,
        "flops": 6 * params * tokens,
        "final_train_loss": round(sum(tail) / len(tail), 4),
        "seed": recipe.seed,
        "peak_lr": recipe.member_lr(member),
        "intermediate_checkpoint": False,
        "train_seconds": round(time.time() - start, 1),
        "member": asdict(member),
        "recipe": {k: v for k, v in asdict(recipe).items() if k != "members"},
    }
    save_checkpoint(model, tokenizer, card, out_dir / member.name)
    return card


def save_checkpoint(model, tokenizer, card: dict, directory: Path) -> None:
    """Write config.json, model.safetensors, tokenizer files and card.json into ``directory``."""
    from pipeline.records import atomic_write_json

    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    atomic_write_json(directory / "card.json", card)


def train_family(recipe: Recipe, out_dir: str | Path, only: list[str] | None = None, log=print,
                 jobs: int = 1) -> list[dict]:
    """Train every member (or those named in ``only``) into ``out_dir``; return their cards.

    With ``jobs`` > 1 the members are spread over that many processes, longest first (each still one thread,
    so a card does not depend on ``jobs``); the family takes about as long as its largest member then.
    """
    out_dir = Path(out_dir)
    members = [m for m in recipe.members if (not only or m.name in only)
               and not (out_dir / m.name / "card.json").exists()]  # resume: a saved card means done
    if not members:
        log(f"every requested checkpoint already has a card in {out_dir}; nothing to train")
        return []
    if jobs > 1 and len(members) > 1:
        return _train_in_processes(recipe, out_dir, members, jobs, log)
    import torch

    torch.set_num_threads(recipe.threads)
    tokenizer = build_tokenizer(recipe)
    stream = token_stream(tokenizer, max(recipe.tokens(m) for m in members), recipe.corpus_seed)
    log(f"training {len(members)} checkpoints on up to {len(stream):,} tokens into {out_dir}")
    cards = []
    for member in members:
        cards.append(train_member(member, recipe, stream, tokenizer, out_dir, log))
        c = cards[-1]
        log(f"{member.name}: N={c['params']:,} D={c['tokens']:,} C={c['flops']:.3e} loss={c['final_train_loss']} "
            f"({c['train_seconds']} s)")
    return cards


def _train_in_processes(recipe: Recipe, out_dir: Path, members: list[Member], jobs: int, log) -> list[dict]:
    """Longest-processing-time-first over ``jobs`` worker processes, one member per task."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    order = sorted(members, key=lambda m: count_params(m, recipe) * recipe.tokens(m), reverse=True)
    log(f"training {len(order)} checkpoints in {min(jobs, len(order))} processes into {out_dir}")
    cards = {}
    with ProcessPoolExecutor(max_workers=min(jobs, len(order)), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(train_family, recipe, out_dir, [m.name], print): m for m in order}
        for future in as_completed(futures):
            for card in future.result():
                cards[card["name"]] = card
                log(f"{card['name']}: done in {card['train_seconds']} s")
    return [cards[m.name] for m in members if m.name in cards]
