"""init_from: a new run starts from another run's weights (here at a longer answer length); a checkpoint
of another model shape, or a path without one, fails in one line before the run directory is claimed."""

from __future__ import annotations

import pytest
import torch

from dlm_lightning.build import build, build_module
from dlm_lightning.errors import CheckpointMismatch, ConfigError
from dlm_lightning.run.experiment import new_run, run_experiment
from dlm_lightning.run.init_weights import load_initial_weights
from suite_helpers import TINY, compose_config, save_run

CHOICES = {"schedule": "uniform", "decoder": "marginal"}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A run of the tiny model at the default answer length, with seeded random weights."""
    cfg = compose_config(TINY)
    torch.manual_seed(7)
    module = build_module(cfg, build(cfg, "data").data_info())
    return save_run(module, cfg, tmp_path_factory.mktemp("source") / "run"), module.state_dict()


def test_weights_load_into_a_model_for_longer_answers(source):
    run_dir, weights = source
    cfg = compose_config([*TINY, "data.answer_length=64", "data.max_free_sentences=10"])
    module = build_module(cfg, build(cfg, "data").data_info())
    assert module.info.seq_len > 58 and not torch.equal(module.state_dict()["denoiser.backbone.embed.weight"],
                                                        weights["denoiser.backbone.embed.weight"])
    load_initial_weights(module, str(run_dir))
    loaded = module.state_dict()
    assert loaded.keys() == weights.keys() and all(torch.equal(loaded[k], weights[k]) for k in weights)


def test_a_run_started_from_weights_trains_from_them(source, tmp_path):
    run_dir, weights = source
    cfg = compose_config([*TINY, "data.answer_length=64", "data.max_free_sentences=10", f"init_from={run_dir}",
                          "trainer.max_steps=1", "trainer.precision=32-true"])
    out = tmp_path / "finetuned"
    run_experiment(new_run(out, cfg, CHOICES), out)
    final = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert final["global_step"] == 1 and final["dlm_signature"]["data"]["seq_len"] > 58
    # one AdamW step in warm-up (lr 0.003 / 100) moves a weight by about 3e-5; a fresh init differs by ~1
    change = max((final["state_dict"][k] - weights[k]).abs().max().item() for k in weights)
    assert 0 < change < 1e-4


def test_another_model_shape_fails_in_one_line_naming_init_from(source, tmp_path):
    run_dir, _ = source
    cfg = compose_config([*TINY, "model=small", f"init_from={run_dir}"])
    out = tmp_path / "run"
    with pytest.raises(CheckpointMismatch, match=rf"^init_from={run_dir}: checkpoint model mismatch at "):
        run_experiment(new_run(out, cfg, CHOICES), out)
    assert not out.exists()  # refused before the run directory was claimed


def test_a_path_without_a_checkpoint_fails_in_one_line(tmp_path):
    cfg = compose_config([*TINY, f"init_from={tmp_path}"])
    module = build_module(cfg, build(cfg, "data").data_info())
    with pytest.raises(ConfigError, match=rf"^init_from='{tmp_path}' is invalid: needs a run directory holding "
                                          r"checkpoints/last.ckpt or a .ckpt file$"):
        load_initial_weights(module, str(tmp_path))
