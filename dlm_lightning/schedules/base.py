"""The noise-schedule interface: everything the loss and the samplers may ask of a schedule.

alpha_i(t) is the probability that token i is still visible at time t (1 at t=0, ~0 at t=1). It may
depend on the position (through its distance from the visible context) and on the token itself.
Shapes: t and s are [B, 1]; x0 is [B, L]; distance is [L] (long, 0 = first answer position).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn


class NoiseSchedule(nn.Module, ABC):
    #: the denoiser must see t (true when masking itself carries information about the token)
    needs_time: bool = False

    def setup(self, info) -> None:
        """Fits data statistics (a DataInfo) before training; buffers set here go into checkpoints."""

    @abstractmethod
    def mask_prob(self, t: torch.Tensor, x0: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
        """1 - alpha_i(t), [B, L]."""

    @abstractmethod
    def weight(self, t: torch.Tensor, x0: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
        """The NELBO weight -alpha_i'(t) / (1 - alpha_i(t)) of a masked position's cross-entropy, [B, L]."""

    def extra_term(self, t: torch.Tensor, x0: torch.Tensor, distance: torch.Tensor,
                   log_probs: torch.Tensor) -> torch.Tensor | None:
        """Any further NELBO term per masked position, [B, L] (None when there is none)."""
        return None

    @abstractmethod
    def unmask_prob(self, t: torch.Tensor, s: torch.Tensor, distance: torch.Tensor,
                    probs: torch.Tensor) -> torch.Tensor:
        """Reverse step t -> s < t for positions masked at t: P(becomes v at s), [B, L, V].

        ``probs`` is the denoiser's prediction x_theta(v | z_t), [B, L, V]; the mass missing from
        each row is the probability of staying masked.
        """
