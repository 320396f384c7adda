"""position_decay (PC-Sampler's position-aware calibration) changes which positions are committed, never how
they are sampled."""

import pytest
import torch

from dlm_lightning.decoders.marginal import MarginalDecoder
from dlm_lightning.errors import ConfigError

from test_block_schedule import prompts, random_context


def test_strong_decay_commits_left_to_right_and_zero_decay_is_the_default():
    context = random_context(12)
    out = MarginalDecoder(block_length=12, position_decay=50.0).decode(context, prompts(), 12,
                                                                       torch.Generator().manual_seed(1))
    assert torch.equal(out.commit_step, torch.arange(12).expand(5, 12))
    plain = MarginalDecoder(block_length=12).decode(context, prompts(), 12, torch.Generator().manual_seed(1))
    zero = MarginalDecoder(block_length=12, position_decay=0.0).decode(context, prompts(), 12,
                                                                      torch.Generator().manual_seed(1))
    assert torch.equal(plain.tokens, zero.tokens) and torch.equal(plain.commit_step, zero.commit_step)
    assert not torch.equal(plain.commit_step, out.commit_step)


def test_negative_decay_names_the_key():
    with pytest.raises(ConfigError, match="position_decay"):
        MarginalDecoder(position_decay=-1.0)
