"""What the probe needs from a model: prompt text in, log-probabilities at appended masks out.

Two sources implement it: a run of this suite (``suite_model``) and any Hugging Face masked LM or
masked diffusion LM (``hf_model``). Everything else in the probe sees only this interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from dlm_lightning.errors import ConfigError


class ProbeModel(ABC):
    name: str  # what was loaded (run directory or hub name / path)
    tokenizer: object  # a transformers tokenizer
    mask_id: int
    eos_id: int | None  # None: the model has no end-of-sequence token, P(EOS) is not reported
    special_ids: tuple[int, ...]  # excluded from the "no special tokens" top-k (EOS, padding, ...)
    vocab_size: int  # size of the predicted distribution (may exceed len(tokenizer))
    notes: list[str]  # facts the outputs must state (caps applied, options ignored, ...)

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Prompt ids with the model's prompt format applied (chat template, [BOS] ... [SEP])."""

    @abstractmethod
    def capacity(self, prompts: list[list[int]]) -> int | None:
        """The most masks the model can take after every one of ``prompts`` (None: no known limit)."""

    @abstractmethod
    def mask_log_probs(self, prompts: list[list[int]], n_masks: int) -> torch.Tensor:
        """One forward pass over each prompt followed by ``n_masks`` masks: float32 [B, n_masks, V]."""

    def training_unigram(self) -> tuple[torch.Tensor, str] | None:
        """The unigram distribution of the model's training data and its description, when known."""
        return None

    def token_text(self, token_id: int) -> str:
        """A readable form of one token (decoded; whitespace-only tokens shown escaped)."""
        if token_id >= len(self.tokenizer):
            return f"<id {token_id}>"  # embedding rows beyond the tokenizer (padded vocabularies)
        text = self.tokenizer.decode([token_id])
        return text.strip() or repr(text)

    def special_mask(self, device=None) -> torch.Tensor:
        mask = torch.zeros(self.vocab_size, dtype=torch.bool, device=device)
        mask[list(self.special_ids)] = True
        return mask


def resolve_device(device: str) -> torch.device:
    """A torch device; "auto" is CUDA when available, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ConfigError("device", device, "a torch device such as cpu, cuda, cuda:1, or auto") from None
