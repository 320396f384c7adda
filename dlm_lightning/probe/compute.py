"""The frequency-collapse probe: N masks after each prompt, one forward pass, statistics per position."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from dlm_lightning.errors import UserError, require
from dlm_lightning.probe.source import ProbeModel
from dlm_lightning.probe.stats import position_stats


@dataclass
class ProbeResult:
    prompts: list[str]
    prompt_lengths: list[int]  # tokens, after the prompt format was applied
    n_masks: int  # masks actually appended (after any cap)
    stats: dict[str, torch.Tensor]  # name -> [P, N] (top-k: [P, N, k]); position j is distance j + 1
    notes: list[str] = field(default_factory=list)

    def has(self, name: str) -> bool:
        return name in self.stats


def run_probe(model: ProbeModel, prompts: list[str], n_masks: int = 128, top_k: int = 3,
              batch_size: int = 16, unigram: torch.Tensor | None = None,
              exclude_special: bool = True) -> ProbeResult:
    require(isinstance(n_masks, int) and n_masks >= 1, "n_masks", n_masks, "must be an integer >= 1")
    require(isinstance(top_k, int) and 1 <= top_k <= model.vocab_size, "top_k", top_k,
            f"must be an integer in [1, {model.vocab_size}]")
    require(isinstance(batch_size, int) and batch_size >= 1, "batch_size", batch_size, "must be an integer >= 1")
    if not prompts:
        raise UserError("no prompts to probe")
    if unigram is not None:
        require(unigram.shape == (model.vocab_size,), "unigram", tuple(unigram.shape),
                f"must have one entry per vocabulary entry ({model.vocab_size})")
    notes = list(model.notes)
    encoded = [model.encode(text) for text in prompts]
    empty = [i for i, ids in enumerate(encoded) if not ids]
    if empty:
        raise UserError(f"prompt {empty[0]} is empty after tokenisation; every prompt needs at least one token")
    capacity = model.capacity(encoded)
    if capacity is not None and n_masks > capacity:
        if capacity < 1:
            raise UserError(f"the longest prompt leaves no room for masks in {model.name}")
        notes.append(f"n_masks={n_masks} capped at {capacity}: the model's answer length "
                     f"(it was trained on at most {capacity} positions after a prompt)")
        n_masks = capacity
    special = model.special_mask()
    parts = []
    for start in range(0, len(encoded), batch_size):
        log_p = model.mask_log_probs(encoded[start:start + batch_size], n_masks)
        parts.append(position_stats(log_p, special.to(log_p.device), model.eos_id, unigram, top_k,
                                    exclude_special))
    stats = {key: torch.cat([part[key] for part in parts]) for key in parts[0]}
    if unigram is None:
        notes.append("no corpus unigram distribution: KL-to-unigram and frequency ranks not computed "
                     "(give unigram.path=<text or JSONL file> for Hugging Face models)")
    return ProbeResult(list(prompts), [len(ids) for ids in encoded], n_masks, stats, notes)
