"""Train, evaluate and sample: ``python -m experiments.run [+schedule=adaptive] [key=value ...]``.

``resume=<run dir>`` continues an unfinished run from its last checkpoint, in the same directory.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.fabric.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig

from dlm_lightning.cli import CONFIG_DIR, config_groups, normalize_group_overrides, register_resolvers
from dlm_lightning.errors import UserError
from dlm_lightning.experiment import new_run, resumed_run, run_experiment
from dlm_lightning.launch.job import isolated_job, record_failure, record_rank, write_overrides
from dlm_lightning.launch.names import name_jobs_by_grid

register_resolvers()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def _main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    overrides = list(hydra_cfg.overrides.task)
    try:
        with isolated_job():  # under -m this process runs every job: each must leave it as it found it
            if cfg.get("resume"):
                others = [o for o in overrides if not o.startswith("resume=")]
                cfg, checkpoint = resumed_run(Path(cfg.resume), others)
                run_dir = Path(hydra_cfg.runtime.output_dir)
            else:
                choices = {k: v for k, v in hydra_cfg.runtime.choices.items() if not k.startswith("hydra")}
                cfg, checkpoint = new_run(run_dir, cfg, choices), None
                write_overrides(run_dir, overrides)
            run_experiment(cfg, run_dir, checkpoint)
            record_rank(run_dir, cfg, overrides)
    except Exception as error:
        if hydra_cfg.mode == RunMode.MULTIRUN:  # any failed job is recorded (error.txt); the sweep goes on
            print(f"error: {record_failure(run_dir, error)} ({run_dir})", file=sys.stderr)
            return
        if not isinstance(error, UserError):
            raise
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    if rank_zero_only.rank == 0:
        print(run_dir)


def main() -> None:
    sys.argv = name_jobs_by_grid(normalize_group_overrides(sys.argv, config_groups()))
    _main()


if __name__ == "__main__":
    main()
