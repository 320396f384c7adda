"""What the joint decoders need from a dependency head: the conditionals of a step's tokens, left to right."""

from __future__ import annotations

import torch
from torch import nn


class JointHead(nn.Module):
    """forward(hidden [B, k, D], positions [B, k], tokens [B, k], base_log_probs [B, k, V]) -> log
    p(x_sigma(j) | z_t, x_sigma(<j)) [B, k, V], entry j reading tokens before j only; entry 0 is the marginal."""

    def incremental(self, hidden: torch.Tensor, positions: torch.Tensor, base_log_probs: torch.Tensor) -> "Conditionals":
        """The same conditionals one position at a time (sampling draws token j before asking for j + 1).
        This default re-runs ``forward`` on the prefix; a head may cache its own state instead."""
        return Recomputed(self, hidden, positions, base_log_probs)


class Conditionals:
    """``next(tokens)`` -> log p(x_sigma(j) | ..., x_sigma(<j)) [B, V] for j = len(tokens so far) (j >= 1)."""

    def next(self, tokens: torch.Tensor) -> torch.Tensor:  # tokens [B, j]: the step's tokens drawn so far
        raise NotImplementedError


class Recomputed(Conditionals):
    def __init__(self, head: nn.Module, hidden, positions, base_log_probs):
        self.head, self.hidden, self.positions, self.base = head, hidden, positions, base_log_probs

    def next(self, tokens: torch.Tensor) -> torch.Tensor:
        j = tokens.shape[1]
        padded = torch.cat([tokens, tokens[:, -1:]], dim=1)  # entry j's own token is never read
        return self.head(self.hidden[:, : j + 1], self.positions[:, : j + 1], padded, self.base[:, : j + 1])[:, j]


def step_conditionals(head: nn.Module, hidden: torch.Tensor, positions: torch.Tensor,
                      base_log_probs: torch.Tensor) -> Conditionals:
    """The head's conditionals one position at a time: its own ``incremental`` for a JointHead, else (any
    module with JointHead's ``forward``) by re-running ``forward`` on the prefix."""
    if isinstance(head, JointHead):
        return head.incremental(hidden, positions, base_log_probs)
    return Recomputed(head, hidden, positions, base_log_probs)
