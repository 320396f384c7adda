"""Tiny local judges saved with save_pretrained: a GPT-2 whose next-token law is a fixed, known table,
a random GPT-2, and models that are not causal LMs; all with one small word-level tokenizer."""

from __future__ import annotations

import math
from pathlib import Path

import torch

WORDS = ["[UNK]", "<s>", "</s>", "the", "cat", "sat", "on", "mat"]
# the fixed next-token law of the table judge, whatever the context
PROBS = [0.05, 0.05, 0.1, 0.3, 0.2, 0.1, 0.1, 0.1]


def word_tokenizer():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    core.pre_tokenizer = Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", bos_token="<s>", eos_token="</s>")


def tiny_gpt2(n_positions: int = 8):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(WORDS), n_positions=n_positions, n_embd=8, n_layer=1, n_head=2,
                        bos_token_id=1, eos_token_id=2)
    return GPT2LMHeadModel(config)


def save_table_judge(path: Path, n_positions: int = 8) -> Path:
    """Every weight zero except: final norm outputs e_0, and the tied embedding's column 0 holds
    log PROBS, so the logits are log PROBS at every position."""
    model = tiny_gpt2(n_positions)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        model.transformer.ln_f.bias[0] = 1.0
        model.transformer.wte.weight[:, 0] = torch.tensor([math.log(p) for p in PROBS])
    model.save_pretrained(path)
    word_tokenizer().save_pretrained(path)
    return path


def save_random_judge(path: Path, n_positions: int = 64) -> Path:
    tiny_gpt2(n_positions).save_pretrained(path)
    word_tokenizer().save_pretrained(path)
    return path
