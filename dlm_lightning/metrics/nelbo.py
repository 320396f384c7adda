"""The NELBO bound per target token, accumulated in float64 and summed over DDP ranks."""

from __future__ import annotations

import math

import torch
from torchmetrics import Metric


class NELBOBound(Metric):
    full_state_update = False

    def __init__(self):
        super().__init__()
        self.add_state("nats", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("tokens", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, nelbo_per_sequence: torch.Tensor, target_tokens: torch.Tensor) -> None:
        self.nats += nelbo_per_sequence.double().sum()
        self.tokens += target_tokens.double().sum()

    def compute(self) -> dict[str, torch.Tensor]:
        nelbo = self.nats / self.tokens
        return {"nelbo": nelbo, "bpt": nelbo / math.log(2.0), "ppl": nelbo.exp()}
