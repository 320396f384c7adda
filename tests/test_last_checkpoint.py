"""last.ckpt holds the latest weights even when the last epoch is not the best one (Lightning's own
save_last rewrites it only together with a new top-k checkpoint)."""

from __future__ import annotations

import torch

from dlm_lightning.run.experiment import new_run, run_experiment
from dlm_lightning.run.evaluate import evaluate_run
from suite_helpers import TINY, compose_config


def test_last_checkpoint_is_the_final_state_when_an_earlier_epoch_is_best(tmp_path):
    # mode=max makes the *worst* validation NELBO the "best" checkpoint: the first epoch's
    cfg = compose_config([*TINY, "trainer.max_epochs=3", "data.train_size=128", "callbacks.checkpoint.mode=max",
                          "trainer.precision=32-true"])
    run_dir = tmp_path / "run"
    metrics = run_experiment(new_run(run_dir, cfg, {"schedule": "uniform", "decoder": "marginal"}), run_dir)
    checkpoints = run_dir / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best-000-000004.ckpt", "last.ckpt"]
    last = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=False)
    assert (last["epoch"], last["global_step"]) == (2, 12) == (2, metrics["global_step"])
    # its weights are the ones the run evaluated last: re-evaluating them gives the run's final val NELBO
    assert evaluate_run(run_dir)["val/nelbo"] == metrics["val/nelbo"]
