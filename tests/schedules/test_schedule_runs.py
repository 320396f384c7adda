"""Schedules in the main job: the command line, the saved config, per-position metrics and figure, and a
reported bound that training-only settings cannot change."""

from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from suite_helpers import TINY
from dlm_lightning.build import build, build_module
from dlm_lightning.run.experiment import new_run

SMALL_RUN = ("model=tiny", "trainer.max_epochs=1", "data.train_size=32", "data.batch_size=16",
             "data.val_size=16", "data.test_size=8", "data.eval_batch_size=16", "callbacks.progress=null")


@pytest.mark.parametrize("spelling", ["+schedule=adaptive", "schedule=adaptive"])
def test_both_spellings_save_the_schedule_and_its_parameters(compose, tmp_path, spelling):
    cfg = compose([*TINY, spelling, "schedule.w_far=0.3"], hydra=True)
    choices = {k: v for k, v in cfg.hydra.runtime.choices.items() if not k.startswith("hydra")}
    del cfg.hydra
    saved = new_run(tmp_path / "run", cfg, choices)  # the config run_experiment saves as config.yaml
    assert saved.choices.schedule == "adaptive"
    assert saved.schedule._target_ == "dlm_lightning.schedules.adaptive.AdaptiveSchedule"
    assert (saved.schedule.w_near, saved.schedule.w_far, saved.schedule.profile) == (2.0, 0.3, "geometric")


def test_an_experiment_preset_chooses_the_schedule(compose):
    cfg = compose([*TINY, "experiment=info_easy_first"], hydra=True)
    assert cfg.hydra.runtime.choices.schedule == "info"
    assert cfg.schedule._target_ == "dlm_lightning.schedules.info.InfoSchedule" and cfg.schedule.beta == -1.0


def test_info_schedule_run_writes_schedule_position_metrics_and_figure(cli):
    result = cli(*SMALL_RUN, "+schedule=info", "schedule.beta=-0.5")
    assert result.code == 0, result.stderr[-3000:]
    run_dir = result.run_dirs()[-1]
    saved = OmegaConf.load(run_dir / "config.yaml")
    assert saved.choices.schedule == "info"
    assert saved.schedule.beta == -0.5 and list(saved.schedule.clip) == [0.25, 4.0] and saved.schedule.eps == 0.0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["schedule"] == "info"
    nelbo = {k: v for k, v in metrics.items() if k.startswith("val/position/nelbo/")}
    accuracy = [k for k in metrics if k.startswith("val/position/accuracy/")]
    assert len(nelbo) == 8 and len(accuracy) == 8
    # 40 answer positions in 8 buckets of 5: the bucket means average to the whole bound
    assert sum(nelbo.values()) / 8 == pytest.approx(metrics["val/nelbo"], rel=1e-5)
    images = set()
    for path in (run_dir / "tensorboard").glob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(path))
        accumulator.Reload()
        images.update(accumulator.Tags()["images"])
    assert "val/position" in images


def test_reported_bound_ignores_the_training_time_range(compose, tiny_info):
    modules = []
    for t_range in ([0.001, 1.0], [0.3, 0.6]):
        cfg = compose([*TINY, "schedule=info", f"module.train_t_range={t_range}"])
        torch.manual_seed(0)
        modules.append(build_module(cfg, tiny_info))
    modules[1].load_state_dict(modules[0].state_dict())
    batch = next(iter(build(compose(TINY), "data").val_dataloader()))
    for module in modules:
        module.eval()
        module._eval_step(batch, 0, module.val_nelbo, module.val_samples, decode=False)
    assert torch.equal(modules[0].val_nelbo.compute()["nelbo"], modules[1].val_nelbo.compute()["nelbo"])


def test_learnable_info_schedule_trains_its_exponents_with_the_backbone(compose, tiny_info):
    cfg = compose([*TINY, "schedule=info", "schedule.learnable=true"])
    torch.manual_seed(0)
    module = build_module(cfg, tiny_info)
    assert module.denoiser.backbone.time_conditioning
    batch = next(iter(build(compose(TINY), "data").train_dataloader()))
    module.training_step(batch, 0).backward()
    grad = module.schedule.raw_exponents.grad
    appears = torch.bincount(batch["input_ids"][:, tiny_info.prompt_length:].flatten(), minlength=tiny_info.vocab_size) > 0
    assert torch.isfinite(grad).all() and (grad[appears] != 0).all()
    assert any(p is module.schedule.raw_exponents for p in module.parameters())  # so the optimizer updates it

