"""The GPU presets for pretrained DLMs compose into the settings docs/pretrained.md describes; the
from-scratch HF presets build on the corpus."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from suite_helpers import TINY, compose_config


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

    # blocks of >= 100M parameters become FSDP units; small ones do not
    assert not policy(module=torch.nn.Linear(10, 10), recurse=False, nonwrapped_numel=10 ** 6)
    assert policy(module=torch.nn.Linear(10, 10), recurse=False, nonwrapped_numel=2 * 10 ** 8)


@pytest.mark.parametrize("preset", ["hf_bert_tiny", "hf_roformer_tiny", "hf_modernbert_tiny"])
def test_from_scratch_presets_build_on_the_corpus_with_a_width_sized_init(preset):
    from dlm_lightning.build import build, build_module

    cfg = compose_config([*TINY, f"model={preset}"])
    info = build(cfg, "data").data_info()
    backbone = build_module(cfg, info).denoiser.backbone
    config = backbone.model.config
    assert config.vocab_size == info.vocab_size and config.initializer_range == 0.1
    # the architecture's default special ids (ModernBERT: 50280-50283) are not ids of this vocabulary
    for key in [key for key in config.to_dict() if key.endswith("_token_id")]:
        assert getattr(config, key) is None or 0 <= getattr(config, key) < info.vocab_size, key
    tokens = torch.randint(0, info.vocab_size, (2, info.seq_len))
    logits, hidden = backbone(tokens)
    assert logits.shape == (2, info.seq_len, info.vocab_size) and hidden.shape == (2, info.seq_len, 128)


def test_a_fresh_model_given_a_special_id_outside_its_vocabulary_fails_in_one_line():
    from dlm_lightning.build import build, build_module
    from dlm_lightning.errors import ConfigError

    cfg = compose_config([*TINY, "model=hf_modernbert_tiny", "+model.config.pad_token_id=500"])
    with pytest.raises(ConfigError, match=r"^model.config.pad_token_id=500 is invalid: must be an id in \[0, "):
        build_module(cfg, build(cfg, "data").data_info())
