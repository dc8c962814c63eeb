"""A small byte-level BPE trained locally, one token per digit and per newline, saved for ``AutoTokenizer``."""
from __future__ import annotations

from typing import Iterable

EOS = "<|endoftext|>"
VOCAB_SIZE = 512


def train_tokenizer(texts: Iterable[str], vocab_size: int = VOCAB_SIZE):
    """A ``PreTrainedTokenizerFast`` trained on ``texts`` (deterministic for the same texts)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # "\n" is always its own token, so a HumanEval prompt (which ends in "\n") ends where
    # training documents have a token boundary too; digits are one token each.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex("\n"), behavior="isolated"),
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(texts), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS, bos_token=EOS,
                                   unk_token=EOS, model_max_length=512)
