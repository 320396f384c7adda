"""Variable-length training: a fraction of training batches is cropped to a random shorter length.

Models trained only at one length learn that every sequence fills the canvas, and their samplers pad
or repeat to fill it; LLaDA crops 1% of its pretraining sequences to a random length for this reason.
Here whole batches are cropped (one length per batch keeps tensors rectangular). Whether a batch is
cropped and to what length is a function of (seed, first sample index), so resumed runs are exact.
"""

from __future__ import annotations

import torch
from torch.utils.data import default_collate

from dlm_lightning.errors import require
from dlm_lightning.seeding import derived_generator


class VariableLengthCollate:
    def __init__(self, fraction: float, min_length: int, seed: int = 0):
        require(0.0 <= fraction <= 1.0, "variable_length", fraction, "a fraction of batches in [0, 1]")
        self.fraction, self.min_length, self.seed = fraction, min_length, seed

    def __call__(self, items: list[dict]) -> dict:
        batch = default_collate(items)
        ids = batch["input_ids"]
        g = derived_generator(self.seed, "crop", int(batch["index"][0]))
        if self.fraction > 0 and torch.rand((), generator=g).item() < self.fraction:
            length = int(torch.randint(self.min_length, ids.shape[1] + 1, (), generator=g))
            batch["input_ids"] = ids[:, :length].contiguous()
        return batch
