"""Bad decoder settings fail with one line naming the key, the value and what is allowed."""

import pytest

from suite_helpers import compose_config
import torch

from dlm_lightning.build import build, build_module
from dlm_lightning.run.checkpoint import model_signature
from dlm_lightning.decoders.ancestral import AncestralDecoder
from dlm_lightning.decoders.base import DecodeContext
from dlm_lightning.decoders.joint import JointDecoder
from dlm_lightning.decoders.marginal import MarginalDecoder
from dlm_lightning.errors import CheckpointMismatch, ConfigError

SMALL = ["model=tiny", "data.train_size=64", "data.val_size=8", "data.test_size=8"]


def config(*overrides):
    return compose_config([*SMALL, *overrides])


@pytest.fixture(scope="module")
def info():
    return build(config(), "data").data_info()


def one_line(error) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


def test_steps_that_do_not_split_over_the_blocks():
    with pytest.raises(ConfigError) as error:
        MarginalDecoder(tokens_per_step=3, block_length=8).check(40)
    assert one_line(error) == ("tokens_per_step=3 is invalid: gives ceil(40/3) = 14 steps, which do not split "
                               "evenly over 5 blocks of 8; allowed here: [1, 2, 4, 8]")


def test_block_length_must_divide_the_answer_and_hold_a_step():
    with pytest.raises(ConfigError, match=r"^block_length=7 is invalid: must divide the answer length 40$"):
        MarginalDecoder(block_length=7).check(40)
    with pytest.raises(ConfigError, match=r"^tokens_per_step=16 is invalid: must be <= block_length=8"):
        MarginalDecoder(tokens_per_step=16, block_length=8).check(40)


@pytest.mark.parametrize("decoder", [AncestralDecoder(tokens_per_step=41), MarginalDecoder(tokens_per_step=41, block_length=40)])
def test_more_tokens_per_step_than_the_answer_holds(decoder):
    with pytest.raises(ConfigError, match=r"^tokens_per_step=41 is invalid: must be <= the answer length 40$"):
        decoder.check(40)


@pytest.mark.parametrize("kwargs,key", [({"remasking": "lowest"}, "remasking"), ({"threshold": 1.5}, "threshold"),
                                        ({"top_p": 0.0}, "top_p"), ({"min_length": -1}, "min_length"),
                                        ({"mode": "greedy"}, "mode"), ({"remasking": "random", "threshold": 0.9}, "remasking"),
                                        ({"rank": "head"}, "rank"), ({"rank": "joint", "mode": "speculative"}, "rank"),
                                        ({"rank": "joint", "remasking": "random"}, "rank")])
def test_invalid_options_name_their_key(kwargs, key):
    with pytest.raises(ConfigError, match=rf"^{key}="):
        JointDecoder(**kwargs)


def test_bad_settings_fail_at_build_time_under_the_decoder_group(info):
    with pytest.raises(ConfigError, match=r"^decoder\.tokens_per_step=3 is invalid: gives ceil\(40/3\)"):
        build_module(config("decoder.tokens_per_step=3"), info)


def test_joint_decoder_without_a_head_fails_at_build_time_and_at_decode_time(info):
    with pytest.raises(ConfigError) as error:
        build_module(config("decoder=joint"), info)
    assert one_line(error).startswith("head=None is invalid: JointDecoder samples through a dependency head")
    assert "head=dependency" in str(error.value)
    # a model built (or loaded) without a head, decoded with the joint decoder
    module = build_module(config(), info)
    context = DecodeContext(module.denoiser, module.schedule, info.mask_id, info.eos_id, dependency_head=None)
    prompts = torch.full((1, info.prompt_length), info.pad_id)
    with pytest.raises(ConfigError, match="head=dependency"):
        JointDecoder().decode(context, prompts, info.answer_length)


def test_checkpoint_without_a_head_cannot_load_into_a_model_with_one(info):
    without = build_module(config(), info)
    checkpoint = {"dlm_signature": {"data": info.signature(), "model": model_signature(without)}}
    with_head = build_module(config("decoder=joint", "head=dependency"), info)
    with pytest.raises(CheckpointMismatch, match=r"dependency_head\..*checkpoint has shape None"):
        with_head.on_load_checkpoint(checkpoint)
