"""Per-position weights of the training loss only; the reported NELBO never sees them.

- CART (context-adaptive reweighting, Dream arXiv 2508.15487): a masked position i is weighted by
  c_i = sum over visible j != i of 0.5 p (1 - p) ** (|i - j| - 1), large next to visible context,
  near 0 far from it. It replaces the time weight: the term (weight(t) CE + extra) * dt/du is
  multiplied by t c_i, so for the uniform schedule the 1/t weight becomes c_i exactly, as Dream
  trains; a position- or token-dependent schedule keeps its exponent's relative emphasis (w_i c_i).
  Not a bound: training only.
- padding=excluded: answer positions after the first end token get weight 0.
"""

from __future__ import annotations

import torch

from dlm_lightning.data.padding import after_first_end


def cart_kernel(length: int, p: float, device=None) -> torch.Tensor:
    """K[i, j] = 0.5 p (1 - p) ** (|i - j| - 1) for i != j, 0 on the diagonal; [L, L] float32."""
    positions = torch.arange(length, device=device)
    gap = (positions[:, None] - positions[None, :]).abs()
    kernel = 0.5 * p * (1.0 - p) ** (gap - 1).clamp_min(0).double()
    return torch.where(gap > 0, kernel, 0.0).float()


def cart_weights(masked: torch.Tensor, p: float) -> torch.Tensor:
    """c_i for every position of z_t given which positions are masked, [B, L]."""
    visible = (~masked).float()
    return visible @ cart_kernel(masked.shape[1], p, masked.device).T


def training_weights(x0: torch.Tensor, masked: torch.Tensor, t: torch.Tensor, prompt_length: int,
                     end_ids: tuple[int, ...], exclude_padding: bool, cart_p: float | None) -> torch.Tensor | None:
    """The factor of each position's training term, [B, L]; None when every factor is 1."""
    weights = None
    if exclude_padding:
        keep = torch.ones_like(masked, dtype=torch.float32)
        keep[:, prompt_length:] = (~after_first_end(x0[:, prompt_length:], end_ids)).float()
        weights = keep
    if cart_p is not None:
        cart = t[:, None].float() * cart_weights(masked, cart_p)
        weights = cart if weights is None else weights * cart
    return weights
