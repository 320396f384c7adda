"""Lightning callbacks configured for this suite's batches."""

from __future__ import annotations

from lightning.pytorch.callbacks import ThroughputMonitor


def _batch_size(batch: dict) -> int:
    return batch["input_ids"].shape[0]


def _tokens(batch: dict) -> int:
    return batch["input_ids"].numel()


class TokenThroughput(ThroughputMonitor):
    """Lightning's ThroughputMonitor counting sequences and tokens (``train/items_per_sec``)."""

    def __init__(self, window_size: int = 20):
        super().__init__(batch_size_fn=_batch_size, length_fn=_tokens, window_size=window_size)
