"""The GPU presets for pretrained DLMs compose into the settings docs/pretrained.md describes."""

from __future__ import annotations

from hydra.utils import instantiate
from suite_helpers import compose_config


def test_frozen_llada_preset_trains_only_a_head_and_decodes_jointly():
    cfg = compose_config(["experiment=llada_frozen_head"])
    assert cfg.model.train_mode == "frozen" and cfg.model.dtype == "bfloat16" and cfg.model.trust_remote_code
    # the data side reads the model's tokenizer with LLaDA's mask id
    assert cfg.data.tokenizer.name == cfg.model.name_or_path and cfg.data.tokenizer.mask_id == 126336
    assert cfg.head.window == cfg.decoder.block_length == 32 and cfg.decoder._target_.endswith("JointDecoder")
    assert cfg.data.layout.prompt_length == 256  # LIMA prompts left-padded and never masked


def test_dream_preset_uses_shifted_logits_adaptive_schedule_and_sharding():
    cfg = compose_config(["experiment=dream_sft_adaptive"])
    assert cfg.model.shift_logits and cfg.model.gradient_checkpointing and cfg.model.train_mode == "full"
    assert cfg.schedule._target_.endswith("AdaptiveSchedule") and cfg.get("head") is None
    assert cfg.trainer.precision == "bf16-mixed" and cfg.trainer.strategy._target_.endswith("JobFSDPStrategy")
    policy = instantiate(cfg.trainer.strategy.auto_wrap_policy)
    import torch

    # blocks of >= 100M parameters become FSDP units; small ones do not
    assert not policy(module=torch.nn.Linear(10, 10), recurse=False, nonwrapped_numel=10 ** 6)
    assert policy(module=torch.nn.Linear(10, 10), recurse=False, nonwrapped_numel=2 * 10 ** 8)
