"""The judge interface: a causal LM with a tokenizer, read only through next-token log-probabilities.

Scoring conventions (MDLM / Duo): samples are re-tokenised for the judge; a sample is scored up to and
including its first end of text (the judge's EOS is appended when the sample ended); the judge's start
token, when it has one, is the context of the first token (otherwise the first token is not scored);
a sample longer than the judge's context is scored in consecutive windows, each restarting from the
last token of the one before.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod

import torch

from dlm_lightning.errors import UserError, require


class JudgeError(UserError):
    """The judge cannot score these samples (e.g. its tokenizer cannot encode them)."""


def require_mauve(mauve: bool) -> None:
    require(not mauve or importlib.util.find_spec("mauve") is not None, "mauve", mauve,
            "needs the mauve-text package: pip install 'dlm-lightning[mauve]' (or set mauve to false)")


class Judge(ABC):
    """``tokenizer`` (a transformers tokenizer), ``context`` (longest input), ``start_id`` (or None),
    ``eos_id`` (or None), ``batch_size`` (windows per forward) and ``mauve`` (compute MAUVE too)."""

    tokenizer: object
    context: int
    start_id: int | None
    eos_id: int | None
    batch_size: int = 16
    mauve: bool = False

    @abstractmethod
    def log_probs(self, inputs: torch.Tensor) -> torch.Tensor:
        """float [B, T, V]: row i is log p(next token | inputs[:, : i + 1])."""

    @abstractmethod
    def features(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """float [B, D]: the last layer's hidden state at each row's last real token (MAUVE's features)."""

    def describe(self) -> str:
        return type(self).__name__

    def encode(self, texts: list[str], ended: list[bool]) -> list[list[int]]:
        """Judge token ids of each sample (EOS appended where the sample ended); refuses, in one line,
        samples the tokenizer maps to its unknown token."""
        encoded = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        unk = getattr(self.tokenizer, "unk_token_id", None)
        bad = [n for n, ids in enumerate(encoded) if unk is not None and unk in ids]
        if bad:
            raise JudgeError(f"judge {self.describe()}: its tokenizer cannot encode the samples ({len(bad)} of "
                             f"{len(texts)} contain text it maps to its unknown token, e.g. {texts[bad[0]][:60]!r}); "
                             f"choose a judge whose vocabulary covers this data")
        return [ids + ([self.eos_id] if end and self.eos_id is not None else []) for ids, end in zip(encoded, ended)]


def check_causal(log_probs, vocab_size: int, what: str) -> None:
    """Refuses a model whose prediction at position i reads tokens after i (not a causal LM)."""
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, vocab_size, (1, 8), generator=generator)
    changed = tokens.clone()
    changed[0, -1] = (tokens[0, -1] + 1) % vocab_size
    with torch.no_grad():
        same = torch.allclose(log_probs(tokens)[:, :-1], log_probs(changed)[:, :-1], rtol=0.0, atol=1e-6)
    if not same:
        raise JudgeError(f"judge {what} is not a causal language model (its predictions read later tokens); "
                         f"use a causal LM such as gpt2-large, or a run trained with objective=autoregressive")
