"""Learning-rate schedules built from an optimizer and the run's total number of optimizer steps."""

from __future__ import annotations

import math

from torch.optim.lr_scheduler import LambdaLR

from dlm_lightning.errors import require


def warmup_cosine(optimizer, total_steps: int, warmup_steps: int = 100, min_ratio: float = 0.1) -> LambdaLR:
    require(warmup_steps >= 0, "warmup_steps", warmup_steps, "must be >= 0")
    require(0.0 <= min_ratio <= 1.0, "min_ratio", min_ratio, "must be in [0, 1]")
    total_steps = max(int(total_steps), 1)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)
