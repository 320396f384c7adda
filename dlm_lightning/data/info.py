"""What the model side needs to know about the data, handed from the DataModule to the LightningModule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch


@dataclass
class DataInfo:
    vocab_size: int
    mask_id: int
    pad_id: int
    eos_id: int
    prompt_length: int  # answer positions start here; 0 for unconditional (packed) text
    seq_len: int
    special_ids: tuple[int, ...]
    token_counts: torch.Tensor  # float64 [vocab]: answer-token counts over a training sample
    tokenizer: object  # a transformers PreTrainedTokenizerFast; saved with checkpoints
    checker: Optional[Callable[[list[str]], object]] = None  # words -> CheckResult (synthetic data)
    rules: tuple[str, ...] = ()  # the rule names the checker may report
    entities: tuple[tuple[str, ...], ...] = ()  # multi-token entities (words), for the entity-pair metric
    pad_ids: tuple[int, ...] = ()  # rainbow pads (data/padding.py): each ends an answer like [EOS]
    loss_excludes_padding: bool = False  # padding=excluded: [EOS] after the first one are not trained on

    @property
    def end_ids(self) -> tuple[int, ...]:
        """Tokens that end an answer: [EOS] and every pad variant."""
        return (self.eos_id, *self.pad_ids)

    @property
    def answer_length(self) -> int:
        return self.seq_len - self.prompt_length

    def unigram(self) -> torch.Tensor:
        """Add-one smoothed corpus unigram distribution over answer tokens (float64)."""
        counts = self.token_counts.double() + 1.0
        counts[self.mask_id] = 0.0
        return counts / counts.sum()

    def signature(self) -> dict:
        """What a checkpoint must agree on to be loaded against this data."""
        vocab = self.tokenizer.get_vocab()
        return {
            "vocab_size": self.vocab_size,
            "mask_id": self.mask_id,
            "seq_len": self.seq_len,
            "prompt_length": self.prompt_length,
            "vocab_hash": hash_vocab(vocab),
        }


def hash_vocab(vocab: dict[str, int]) -> str:
    import hashlib

    text = "\n".join(f"{tok}\t{idx}" for tok, idx in sorted(vocab.items(), key=lambda kv: kv[1]))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
