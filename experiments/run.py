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

from dlm_lightning.cli import (CONFIG_DIR, check_or_exit, check_output_arguments, check_resume_arguments, config_groups,
                               normalize_group_overrides, register_resolvers, remove_unclaimed)
from dlm_lightning.run.console_log import console_log
from dlm_lightning.errors import UserError
from dlm_lightning.run.experiment import FINISHED, continued_sweep_job, new_run, resumed_run, run_experiment
from dlm_lightning.run.job import isolated_job, record_failure, record_rank
from dlm_lightning.launch.names import name_jobs_by_grid
from dlm_lightning.run.layout import LOG_FILE, METRICS_FILE
from dlm_lightning.run.lock import run_dir_lock

register_resolvers()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def _main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    overrides = list(hydra_cfg.overrides.task)
    existed = any(run_dir.iterdir()) if run_dir.is_dir() else False
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN
    with console_log() if rank_zero_only.rank == 0 else nullcontext() as log:
        attach = (lambda directory: log.attach(directory / LOG_FILE)) if log is not None else None
        try:
            # under -m this process runs every job: each must leave it as it found it
            with isolated_job(), run_dir_lock(run_dir):
                if _run_job(cfg, run_dir, overrides, sweeping, attach):
                    record_rank(run_dir, cfg, overrides)
        except Exception as error:
            _forget_unclaimed(run_dir, existed, sweeping)
            if sweeping:  # any failed job is recorded (error.txt, never into a finished one); the sweep goes on
                summary = f"{type(error).__name__}: {error}" if (run_dir / METRICS_FILE).exists() else \
                    record_failure(run_dir, error)
                print(f"error: {summary} ({run_dir})", file=sys.stderr)
                return
            if not isinstance(error, UserError):
                raise
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
        if rank_zero_only.rank == 0:
            print(run_dir)


def _run_job(cfg: DictConfig, run_dir: Path, overrides: list[str], sweeping: bool, attach) -> bool:
    """Runs this job: a resume, a sweep job left unfinished by an earlier launch, or a new run.
    Returns False for a sweep job that had finished earlier (kept untouched)."""
    if cfg.get("resume"):
        cfg, checkpoint = resumed_run(Path(cfg.resume), [o for o in overrides if not o.startswith("resume=")])
    else:
        choices = {k: v for k, v in HydraConfig.get().runtime.choices.items() if not k.startswith("hydra")}
        earlier = continued_sweep_job(run_dir, cfg, choices) if sweeping else None
        if earlier == FINISHED:
            print(f"{run_dir}: finished in an earlier launch of this sweep; kept as it is")
            return False
        if earlier is None:
            run_experiment(new_run(run_dir, cfg, choices), run_dir, None, overrides, on_claim=attach)
            return True
        cfg, checkpoint = earlier
    if attach is not None:
        attach(run_dir)
    run_experiment(cfg, run_dir, checkpoint)
    return True


def _forget_unclaimed(run_dir: Path, existed: bool, sweeping: bool) -> None:
    """A single run refused before it claimed its directory leaves no empty directory behind."""
    if sweeping or existed or rank_zero_only.rank != 0:
        return
    remove_unclaimed(run_dir)


def main() -> None:
    argv = normalize_group_overrides(sys.argv[1:], config_groups())
    check_or_exit(argv, "config", check_resume_arguments, check_output_arguments)
    sys.argv = name_jobs_by_grid([sys.argv[0], *argv])
    _main()


if __name__ == "__main__":
    main()
