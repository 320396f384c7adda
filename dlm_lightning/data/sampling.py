"""A sampler whose order is a pure function of (epoch, index), sharded over DDP ranks.

Training documents are drawn fresh each epoch (ids ``epoch * size + j``), evaluation uses ids
``0..size-1`` every time. Because nothing depends on hidden RNG state, a resumed run sees exactly the
data an uninterrupted run would, and each evaluation sample is seen once across ranks.
"""

from __future__ import annotations

import torch.distributed as dist
from torch.utils.data import Sampler


def rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class EpochIndexSampler(Sampler[int]):
    def __init__(self, size: int, fresh_each_epoch: bool):
        self.size, self.fresh_each_epoch, self.epoch = size, fresh_each_epoch, 0
        self._skip = 0

    def skip_next(self, count: int) -> None:
        """The next iteration starts ``count`` samples (of this rank) into the epoch: resuming mid-epoch."""
        self._skip = count

    def set_epoch(self, epoch: int) -> None:  # called by Lightning at every epoch start
        self.epoch = epoch

    def __iter__(self):
        rank, world = rank_and_world()
        offset = self.epoch * self.size if self.fresh_each_epoch else 0
        skip, self._skip = self._skip, 0
        return iter(range(offset + rank, offset + self.size, world)[skip:])

    def __len__(self) -> int:
        rank, world = rank_and_world()
        return len(range(rank, self.size, world))
