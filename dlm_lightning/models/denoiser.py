"""SUBS parameterisation around a backbone: [MASK] is never predicted, visible tokens copy through."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class DenoiserOutput:
    log_probs: torch.Tensor  # float32 [B, L, V]
    hidden: torch.Tensor  # [B, L, D]


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
