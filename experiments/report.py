"""Aggregate a sweep: ``python -m experiments.report sweep_dir=<sweep dir> [seed_key=seed]``.

Writes results.csv (one row per job), results.md (mean ± std over seeds per grid cell, best marked,
failed jobs listed), comparison plots (*.png) and TensorBoard hparams (``<sweep dir>/hparams``) into the
sweep directory, and prints the path of results.md. Sweeps run it themselves when they end.
"""

from __future__ import annotations

from typing import Optional

import hydra
from omegaconf import DictConfig

from dlm_lightning.cli import CONFIG_DIR, exit_on_user_error, register_resolvers, run_main
from dlm_lightning.config_types import check_keys
from dlm_lightning.errors import require
from dlm_lightning.report.sweep_report import write_sweep_report

register_resolvers()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="report")
def _main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        check_keys(cfg, {"sweep_dir": Optional[str], "seed_key": str})
        require(cfg.sweep_dir is not None, "sweep_dir", None, "give sweep_dir=<a sweep directory>")
        print(write_sweep_report(cfg.sweep_dir, seed_key=cfg.seed_key))


def main(argv: list[str] | None = None) -> None:
    run_main(_main, "report", argv)


if __name__ == "__main__":
    main()
