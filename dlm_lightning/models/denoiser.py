"""SUBS parameterisation around a backbone: [MASK] is never predicted, visible tokens copy through."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class DenoiserOutput:
    log_probs: torch.Tensor  # float32 [B, L, V]
    hidden: torch.Tensor  # [B, L, D]
    # a span forward covers S positions per row, from sequence position start [B]; None: all L positions
    start: torch.Tensor | None = None

    def columns(self, positions: torch.Tensor) -> torch.Tensor:
        """The columns of log_probs/hidden holding sequence positions [B, k]. Positions outside a span
        (callers' padding) are clamped into it: their values must not be used."""
        if self.start is None:
            return positions
        return (positions - self.start.unsqueeze(1)).clamp(0, self.log_probs.shape[1] - 1)


def subs_log_probs(logits: torch.Tensor, z: torch.Tensor, mask_id: int) -> torch.Tensor:
    logits = logits.float()
    logits[..., mask_id] = float("-inf")
    log_probs = logits.log_softmax(dim=-1)
    visible = (z != mask_id).unsqueeze(-1)
    copied = torch.full_like(log_probs, float("-inf")).scatter_(-1, z.unsqueeze(-1), 0.0)
    return torch.where(visible, copied, log_probs)


class Denoiser(nn.Module):
    def __init__(self, backbone: nn.Module, mask_id: int, needs_time: bool):
        super().__init__()
        self.backbone, self.mask_id, self.needs_time = backbone, mask_id, needs_time

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> DenoiserOutput:
        """z: [B, L] ids with [MASK]; t: [B] noise level (used only when the schedule needs it)."""
        logits, hidden = self.backbone(z, t if self.needs_time else None)
        return DenoiserOutput(subs_log_probs(logits, z, self.mask_id), hidden)

    # ---- key/value caching (backbones with ``supports_kv_cache``) ------------------------------------
    @property
    def supports_kv_cache(self) -> bool:
        return getattr(self.backbone, "supports_kv_cache", False)

    def fill(self, z: torch.Tensor, t: torch.Tensor, cache) -> DenoiserOutput:
        """A full forward that also fills ``cache`` (from ``backbone.new_cache()``)."""
        logits, hidden = self.backbone(z, t if self.needs_time else None, cache=cache)
        return DenoiserOutput(subs_log_probs(logits, z, self.mask_id), hidden)

    def forward_span(self, z: torch.Tensor, t: torch.Tensor, start: torch.Tensor, width: int, cache) -> DenoiserOutput:
        """Outputs at positions start[b] .. start[b] + width - 1 of each row, the rest read from ``cache``."""
        positions = start.unsqueeze(1) + torch.arange(width, device=z.device)
        tokens = z.gather(1, positions)
        logits, hidden = self.backbone.forward_span(tokens, positions, cache, t if self.needs_time else None)
        return DenoiserOutput(subs_log_probs(logits, tokens, self.mask_id), hidden, start)
