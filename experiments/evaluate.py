"""Evaluate a run's checkpoint in one process: ``python -m experiments.evaluate run=<run dir> [split=val]``.

Prints the metrics as JSON (e.g. ``val/nelbo``), to check a run's numbers or compare checkpoints.
With ``gap_ks`` (a run with the dependency head) it adds the factorisation gap in nats per committed
token: ``<split>/gap/k_<k>`` and ``<split>/gap/distance_<d>`` (dlm_lightning/metrics/factorisation.py).
See dlm_lightning/configs/evaluate.yaml for every key.
"""

from __future__ import annotations

import json
from typing import Literal, Optional

import hydra
from omegaconf import DictConfig

from dlm_lightning.cli import CONFIG_DIR, exit_on_user_error, register_resolvers, run_main
from dlm_lightning.config_types import PositiveInt, check_keys
from dlm_lightning.errors import require
from dlm_lightning.run.evaluate import SPLITS, evaluate_run
from dlm_lightning.run.load import CHECKPOINTS

register_resolvers()

SCHEMA = {"run": Optional[str], "checkpoint": Literal[CHECKPOINTS], "split": Literal[SPLITS],
          "gap_ks": list[int], "gap_distances": list[int], "gap_samples": PositiveInt}


def evaluate(cfg: DictConfig) -> dict:
    check_keys(cfg, SCHEMA)
    require(cfg.run is not None, "run", None, "give run=<run directory, or a checkpoint file inside one>")
    metrics = evaluate_run(cfg.run, cfg.checkpoint, cfg.split)
    if cfg.gap_ks or cfg.gap_distances:
        metrics.update(gap_metrics(cfg))
    return metrics


def gap_metrics(cfg: DictConfig) -> dict:
    from dlm_lightning.run.load import load_run
    from dlm_lightning.trap.gap import measure_gap

    run = load_run(cfg.run, cfg.checkpoint)
    require(run.module.dependency_head is not None, "gap_ks", list(cfg.gap_ks),
            "the factorisation gap needs a run trained with head=dependency")
    run.datamodule.dataset(cfg.split)  # settles the split's size
    samples = min(cfg.gap_samples, run.datamodule.sizes[cfg.split])
    rows = measure_gap(run, list(cfg.gap_ks), list(cfg.gap_distances), samples, 64, 0, cfg.split)
    return {f"{cfg.split}/gap/{r['by']}_{r['value']}": r["gap_nats_per_token"] for r in rows}


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="evaluate")
def _main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        metrics = evaluate(cfg)
    print(json.dumps(metrics, indent=2, sort_keys=True))


def main(argv: list[str] | None = None) -> None:
    run_main(_main, "evaluate", argv)


if __name__ == "__main__":
    main()
