"""Lightning callbacks for this suite: throughput in tokens, and a last.ckpt that is always the latest."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Checkpoint, ThroughputMonitor
from lightning.pytorch.trainer.states import TrainerFn

from dlm_lightning.run_layout import LAST_CHECKPOINT


def _batch_size(batch: dict) -> int:
    return batch["input_ids"].shape[0]


def _tokens(batch: dict) -> int:
    return batch["input_ids"].numel()


class TokenThroughput(ThroughputMonitor):
    """Lightning's ThroughputMonitor counting sequences and tokens (``train/items_per_sec``)."""

    def __init__(self, window_size: int = 20):
        super().__init__(batch_size_fn=_batch_size, length_fn=_tokens, window_size=window_size)


class LastCheckpoint(Checkpoint):
    """Writes ``<dirpath>/last.ckpt`` after every validation of a fit and at its end, so that it always
    holds the latest weights. Lightning's ``ModelCheckpoint(save_last=True)`` rewrites its last.ckpt only
    when it also saves a top-k checkpoint, so after an epoch that is not a new best its last.ckpt is an
    older one. A ``Checkpoint`` subclass runs after ``ModelCheckpoint``, so the saved state includes this
    validation's top-k bookkeeping (resume needs it)."""

    def __init__(self, dirpath: str, filename: str = LAST_CHECKPOINT.name):
        self.path = Path(dirpath) / filename
        self._saved_step: int | None = None

    def _save(self, trainer: L.Trainer) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING or self._saved_step == trainer.global_step:
            return
        trainer.save_checkpoint(self.path, weights_only=False)  # full state: resume needs optimizer and loops
        self._saved_step = trainer.global_step

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer)
