"""Evaluates a run's checkpoint again in this one process (``python -m experiments.evaluate run=<run dir>``).

Same data, the same index-determined noise and the same precision as the run's own evaluation, so the
result equals the run's synced multi-process metric up to floating-point summation order.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L

from dlm_lightning.build import build
from dlm_lightning.errors import require
from dlm_lightning.run.load import load_run

SPLITS = ("val", "test")


def evaluate_run(path: str | Path, which: str = "last", split: str = "val") -> dict[str, float]:
    require(split in SPLITS, "split", split, f"one of {', '.join(SPLITS)}")
    run = load_run(path, which)
    trainer = L.Trainer(accelerator=run.cfg.trainer.accelerator, devices=1, precision=run.cfg.trainer.precision,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, use_distributed_sampler=False)
    evaluate = trainer.validate if split == "val" else trainer.test
    (metrics,) = evaluate(run.module, datamodule=build(run.cfg, "data"), verbose=False)
    return {key: float(value) for key, value in metrics.items()}
