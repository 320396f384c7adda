"""Train, evaluate and sample: ``python -m experiments.run [+schedule=adaptive] [key=value ...]``.

``resume=<run dir>`` continues an unfinished run from its last checkpoint, in the same directory.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.fabric.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig

from dlm_lightning.cli import CONFIG_DIR, check_resume_arguments, config_groups, normalize_group_overrides, register_resolvers
from dlm_lightning.console_log import console_log
from dlm_lightning.errors import UserError
from dlm_lightning.experiment import new_run, resumed_run, run_experiment
from dlm_lightning.launch.job import isolated_job, record_failure, record_rank
from dlm_lightning.launch.names import name_jobs_by_grid
from dlm_lightning.run_layout import LOG_FILE
from dlm_lightning.run_lock import run_dir_lock

register_resolvers()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def _main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    overrides = list(hydra_cfg.overrides.task)
    existed = any(run_dir.iterdir()) if run_dir.is_dir() else False
    with console_log() if rank_zero_only.rank == 0 else nullcontext() as log:
        attach = (lambda directory: log.attach(directory / LOG_FILE)) if log is not None else None
        try:
            # under -m this process runs every job: each must leave it as it found it
            with isolated_job(), run_dir_lock(run_dir):
                if cfg.get("resume"):
                    others = [o for o in overrides if not o.startswith("resume=")]
                    cfg, checkpoint = resumed_run(Path(cfg.resume), others)
                    if attach is not None:
                        attach(run_dir)
                    run_experiment(cfg, run_dir, checkpoint)
                else:
                    choices = {k: v for k, v in hydra_cfg.runtime.choices.items() if not k.startswith("hydra")}
                    run_experiment(new_run(run_dir, cfg, choices), run_dir, None, overrides, on_claim=attach)
                record_rank(run_dir, cfg, overrides)
        except Exception as error:
            _forget_unclaimed(run_dir, existed, hydra_cfg.mode == RunMode.MULTIRUN)
            if hydra_cfg.mode == RunMode.MULTIRUN:  # any failed job is recorded (error.txt); the sweep goes on
                print(f"error: {record_failure(run_dir, error)} ({run_dir})", file=sys.stderr)
                return
            if not isinstance(error, UserError):
                raise
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
        if rank_zero_only.rank == 0:
            print(run_dir)


def _forget_unclaimed(run_dir: Path, existed: bool, sweeping: bool) -> None:
    """A single run refused before it claimed its directory leaves no empty directory behind."""
    if not sweeping and not existed and rank_zero_only.rank == 0 and run_dir.is_dir() and not any(run_dir.iterdir()):
        run_dir.rmdir()


def main() -> None:
    try:
        check_resume_arguments(sys.argv[1:])
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    sys.argv = name_jobs_by_grid(normalize_group_overrides(sys.argv, config_groups()))
    _main()


if __name__ == "__main__":
    main()
