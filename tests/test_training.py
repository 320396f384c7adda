"""One optimisation step of the configured pipeline; the training loss and its noise; a NaN loss stops the run."""

from __future__ import annotations

import pytest
import torch

from dlm_lightning.build import build
from dlm_lightning.errors import TrainingDiverged
from dlm_lightning.masked_diffusion import stratified_times
from dlm_lightning.seeding import derived_generator


def _trainer(cfg, tmp_path, **overrides):
    """The configured Trainer (precision, clipping...) without logger, checkpoints, progress or validation."""
    options = dict(logger=False, callbacks=[], enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False, limit_val_batches=0, default_root_dir=str(tmp_path))
    options.update(overrides)
    return build(cfg, "trainer", **options)


def test_one_optimisation_step_changes_the_parameters(tiny_cfg, tiny_module, tmp_path):
    datamodule = build(tiny_cfg, "data")
    before = {name: p.detach().clone() for name, p in tiny_module.named_parameters()}
    trainer = _trainer(tiny_cfg, tmp_path, max_steps=1)
    trainer.fit(tiny_module, datamodule=datamodule)
    assert trainer.global_step == 1
    loss = trainer.callback_metrics["train/loss"]
    assert torch.isfinite(loss) and 0 < loss.item() < 20
    after = dict(tiny_module.named_parameters())
    assert all(torch.isfinite(p).all() for p in after.values())
    changed = [name for name, p in after.items() if not torch.equal(p.detach(), before[name])]
    assert set(changed) == set(before)  # AdamW moves every parameter (gradient and weight decay)


def test_training_loss_is_the_nelbo_per_answer_token_with_noise_seeded_by_step(tiny_cfg, tiny_module, tiny_info):
    module, dataset = tiny_module, build(tiny_cfg, "data").dataset("train")
    x0 = torch.stack([dataset[i]["input_ids"] for i in range(8)])
    batch = {"input_ids": x0, "index": torch.arange(8)}
    with torch.no_grad():
        global_state = torch.get_rng_state()
        loss = module.training_step(batch, 0)
        assert torch.equal(torch.get_rng_state(), global_state)  # the global RNG is neither read nor reseeded
        torch.rand(5)  # and moving it changes nothing
        again = module.training_step(batch, 0)
        noise = derived_generator(module.seed, "train", 0, 0)  # step 0, rank 0
        u = stratified_times(8, noise, *module.train_t_range)
        draw = module._nelbo(x0, u, torch.rand(x0.shape, generator=noise))
    assert torch.equal(loss, again)  # the noise is a function of (seed, step, rank), not of the RNG's past
    expected = draw.terms.sum() / (8 * tiny_info.answer_length)
    assert torch.allclose(loss, expected)
    assert draw.masked[:, : tiny_info.prompt_length].sum() == 0 and draw.masked.any()


def test_nan_loss_stops_training_naming_the_step(tiny_cfg, tiny_module, tmp_path, monkeypatch):
    module = tiny_module
    original = module._nelbo

    def poisoned(x0, u, uniforms):
        draw = original(x0, u, uniforms)
        if module.global_step == 2:
            draw.terms = draw.terms * float("nan")
        return draw

    monkeypatch.setattr(module, "_nelbo", poisoned)
    trainer = _trainer(tiny_cfg, tmp_path, max_steps=5)
    with pytest.raises(TrainingDiverged, match=r"^training loss is nan at step 2; run stopped$"):
        trainer.fit(module, datamodule=build(tiny_cfg, "data"))
    assert trainer.global_step == 2
