"""TensorBoard's HParams view of a sweep: one run per finished job under ``<sweep>/hparams/``."""

from __future__ import annotations

import shutil
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

from dlm_lightning.report.grid import is_number
from dlm_lightning.report.jobs import OK, Job

HPARAMS_DIR = "hparams"


def write_hparams(sweep_dir: Path, jobs: list[Job], keys: list[str], metrics: list[str]) -> Path:
    """``keys``: the grid axes and the seed (the hparams columns); ``metrics``: the metric columns."""
    root = sweep_dir / HPARAMS_DIR
    shutil.rmtree(root, ignore_errors=True)  # written by this function only: rewrite, never append
    for job in jobs:
        if job.status != OK:
            continue
        hparams = {k: job.overrides[k] for k in keys if k in job.overrides}
        values = {m: float(job.metrics[m]) for m in metrics if is_number(job.metrics.get(m))}
        with SummaryWriter(log_dir=str(root / job.name)) as writer:
            writer.add_hparams(hparams, values, run_name=".")
    return root
