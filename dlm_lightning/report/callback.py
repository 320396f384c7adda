"""A Hydra callback that writes the sweep report when a ``-m`` sweep ends (see dlm_lightning/configs/hydra/default.yaml)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class ReportAtSweepEnd(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        # imported here: Hydra builds its callbacks in every run, single runs and DDP ranks included
        from lightning.fabric.utilities.rank_zero import rank_zero_only

        from dlm_lightning.report.jobs import OK, collect_jobs
        from dlm_lightning.report.sweep_report import write_sweep_report

        if rank_zero_only.rank != 0:  # under torchrun every rank runs the sweep; one report is enough
            return
        sweep_dir = Path(config.hydra.sweep.dir).absolute()
        try:
            write_sweep_report(sweep_dir)
        except Exception as error:  # the jobs' results stay valid without a report: say so, don't fail
            log.error("the sweep report failed (%s: %s); rerun python -m experiments.report sweep_dir=%s",
                      type(error).__name__, error, sweep_dir)
        print(sweep_dir)
        if not any(job.status == OK for job in collect_jobs(sweep_dir)):
            print(f"error: no job of the sweep finished (see error.txt in each job of {sweep_dir})", file=sys.stderr)
            sys.exit(1)
