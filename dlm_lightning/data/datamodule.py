"""Shared DataModule plumbing: deterministic samplers, loaders and the answer-token statistics."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from dlm_lightning.data.info import DataInfo
from dlm_lightning.data.sampling import EpochIndexSampler
from dlm_lightning.errors import require, require_positive


class IndexedDataModule(L.LightningDataModule):
    """Subclasses provide ``dataset(split)`` (map-style, any index >= 0) and ``data_info()``."""

    def __init__(self, batch_size: int, train_size: int, val_size: int, test_size: int,
                 num_workers: int = 0, eval_batch_size: int | None = None):
        super().__init__()
        require_positive(batch_size=batch_size, train_size=train_size, val_size=val_size,
                         test_size=test_size)
        if eval_batch_size is not None:  # null: the training batch size
            require_positive(eval_batch_size=eval_batch_size)
        require(isinstance(num_workers, int) and num_workers >= 0, "num_workers", num_workers, "must be >= 0")
        self.batch_size, self.num_workers = batch_size, num_workers
        self.eval_batch_size = eval_batch_size or batch_size
        self.sizes = {"train": train_size, "val": val_size, "test": test_size}

    def dataset(self, split: str) -> Dataset:
        raise NotImplementedError

    def data_info(self) -> DataInfo:
        raise NotImplementedError

    def collate_fn(self, split: str):
        """The loader's collate function (None: PyTorch's default)."""
        return None

    def _loader(self, split: str) -> DataLoader:
        training = split == "train"
        dataset = self.dataset(split)  # first: a subclass may settle its split sizes here
        return DataLoader(
            dataset,
            batch_size=self.batch_size if training else self.eval_batch_size,
            sampler=EpochIndexSampler(self.sizes[split], fresh_each_epoch=training),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            drop_last=training,
            collate_fn=self.collate_fn(split),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")


def answer_token_counts(dataset: Dataset, prompt_length: int, vocab_size: int, n: int) -> torch.Tensor:
    counts = torch.zeros(vocab_size, dtype=torch.float64)
    for index in range(n):
        ids = dataset[index]["input_ids"][prompt_length:]
        counts += torch.bincount(ids, minlength=vocab_size).double()
    return counts
