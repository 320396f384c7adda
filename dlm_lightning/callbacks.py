"""Lightning callbacks for this suite: throughput in tokens, a last.ckpt that is always the latest, the exact
mid-epoch data order, and the decoded samples written out of the module."""

from __future__ import annotations

import json
import os
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback, Checkpoint, ThroughputMonitor
from lightning.pytorch.trainer.states import TrainerFn

from dlm_lightning.metrics.positions import POSITION_PREFIX, position_figure
from dlm_lightning.run.layout import LAST_CHECKPOINT, SAMPLES_FILE
from dlm_lightning.sample_records import samples_markdown


def _batch_size(batch: dict) -> int:
    return batch["input_ids"].shape[0]


def _tokens(batch: dict) -> int:
    return batch["input_ids"].numel()


class TokenThroughput(ThroughputMonitor):
    """Lightning's ThroughputMonitor counting sequences and tokens (``train/items_per_sec``)."""

    def __init__(self, window_size: int = 20):
        super().__init__(batch_size_fn=_batch_size, length_fn=_tokens, window_size=window_size)


class LastCheckpoint(Checkpoint):
    """Writes ``<dirpath>/last.ckpt`` after every validation of a fit and at every epoch's end, so that it
    always holds the latest weights. Lightning's ``ModelCheckpoint(save_last=True)`` rewrites its last.ckpt
    only when it also saves a top-k checkpoint, so after an epoch that is not a new best its last.ckpt is
    an older one.

    The save must come after ``ModelCheckpoint`` has updated its best-so-far state, or a resumed run
    forgets its best: a ``Checkpoint`` subclass runs after it within a hook, and for a validation at the
    end of an epoch ModelCheckpoint saves at ``on_train_epoch_end``, so this one waits for that hook too.
    The file is written beside and renamed into place: a kill while saving leaves the previous one."""

    def __init__(self, dirpath: str, filename: str = LAST_CHECKPOINT.name):
        self.path = Path(dirpath) / filename
        self._saved_step: int | None = None

    def _save(self, trainer: L.Trainer) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        partial = self.path.with_name(f".{self.path.name}.partial")
        trainer.save_checkpoint(partial, weights_only=False)  # full state: resume needs optimizer and loops
        if trainer.is_global_zero:
            os.replace(partial, self.path)
        self._saved_step = trainer.global_step

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not _validates_at_epoch_end(trainer) and self._saved_step != trainer.global_step:
            self._save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._saved_step != trainer.global_step:
            self._save(trainer)


def _validates_at_epoch_end(trainer: L.Trainer) -> bool:
    """Whether this validation is the one at the end of a training epoch (ModelCheckpoint's own rule for
    saving at ``on_train_epoch_end``, in public Trainer attributes)."""
    return trainer.check_val_every_n_epoch == 1 and trainer.val_check_interval == 1.0


class ResumableDataOrder(Callback):
    """Makes resume exact when a run is killed mid-epoch (``trainer.val_check_interval < 1``).

    Lightning restarts an unfinished epoch's data from its first batch unless the loader saves its
    position. This callback counts the training batches done in the current epoch, keeps that count in
    the checkpoint, and on resume tells the loader's ``EpochIndexSampler`` to skip them, so the
    resumed epoch sees exactly the batches an uninterrupted run would."""

    def __init__(self):
        self.batches_done = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.batches_done = 0  # not called when resuming inside an epoch, which keeps the restored count

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        self.batches_done += 1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.batches_done = 0  # runs before the checkpoint callbacks: an epoch-end checkpoint skips nothing

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        sampler = getattr(trainer.train_dataloader, "sampler", None)
        if 0 < self.batches_done < trainer.num_training_batches and hasattr(sampler, "skip_next"):
            sampler.skip_next(self.batches_done * trainer.train_dataloader.batch_size)

    def state_dict(self) -> dict:
        return {"batches_done": self.batches_done}

    def load_state_dict(self, state_dict: dict) -> None:
        self.batches_done = state_dict["batches_done"]


class SampleWriter(Callback):
    """Decoded samples and evaluation figures, taken from what validation_step and test_step return
    (``{"samples": records}``), so the module writes no files and no TensorBoard entries itself.

    - after each validation: the first samples as text (``val/samples``) and the per-position curves as
      a figure (``val/position``), in every logger that takes text or figures (TensorBoard);
    - after testing: every test sample in ``samples.jsonl`` (each rank writes its part, rank 0 merges
      them in index order) and the first 32 as text (``test/samples``).
    """

    def __init__(self, run_dir: Path, text_samples: tuple[int, int] = (8, 32)):
        self.run_dir, self.text_samples = Path(run_dir), text_samples
        self.samples: list[dict] = []

    def _collect(self, outputs) -> None:
        if isinstance(outputs, dict) and outputs.get("samples"):
            self.samples.extend(outputs["samples"])

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self.samples = []

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self.samples = []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._collect(outputs)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._collect(outputs)

    def on_validation_end(self, trainer, pl_module) -> None:
        # not on_validation_epoch_end: callbacks run before the module's, whose logged values come later
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        positions = {key[len(POSITION_PREFIX):]: float(value) for key, value in trainer.callback_metrics.items()
                     if key.startswith(POSITION_PREFIX)}
        for experiment in _writers(trainer):
            if positions and hasattr(experiment, "add_figure"):
                experiment.add_figure("val/position", position_figure(positions), trainer.global_step)
            if self.samples and hasattr(experiment, "add_text"):
                experiment.add_text("val/samples", samples_markdown(self.samples[: self.text_samples[0]]),
                                    trainer.global_step)

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        part = self.run_dir / f"samples.rank{trainer.global_rank}.jsonl"
        part.write_text("".join(json.dumps(r) + "\n" for r in self.samples))
        trainer.strategy.barrier("samples")
        if not trainer.is_global_zero:
            return
        parts = sorted(self.run_dir.glob("samples.rank*.jsonl"))
        merged = sorted((json.loads(line) for p in parts for line in p.read_text().splitlines()),
                        key=lambda r: r["index"])
        (self.run_dir / SAMPLES_FILE).write_text("".join(json.dumps(r) + "\n" for r in merged))
        for p in parts:
            p.unlink()
        for experiment in _writers(trainer):
            if merged and hasattr(experiment, "add_text"):
                experiment.add_text("test/samples", samples_markdown(merged[: self.text_samples[1]]),
                                    trainer.global_step)


def _writers(trainer) -> list:
    """The loggers' underlying writers (a SummaryWriter for TensorBoard)."""
    return [getattr(logger, "experiment", None) for logger in trainer.loggers]
