"""The LLaDA-style block schedule: tokens per step, block confinement, determinism, threshold bounds."""

import pytest
import torch

from dlm_lightning.decoders.base import DecodeContext
from dlm_lightning.decoders.marginal import MarginalDecoder
from dlm_lightning.models.denoiser import Denoiser
from dlm_lightning.models.transformer import Transformer
from dlm_lightning.schedules.uniform import UniformSchedule

VOCAB, MASK, EOS, PROMPT = 12, 1, 3, 4


def random_context(answer_length: int, seed: int = 0) -> DecodeContext:
    torch.manual_seed(seed)
    backbone = Transformer(VOCAB, PROMPT + answer_length, d_model=16, n_layers=1, n_heads=2, mlp_ratio=2)
    return DecodeContext(Denoiser(backbone, MASK, needs_time=False).eval(), UniformSchedule(), MASK, EOS)


def prompts(batch: int = 5) -> torch.Tensor:
    return torch.randint(4, VOCAB, (batch, PROMPT), generator=torch.Generator().manual_seed(7))


def documented_counts(block: int, steps_per_block: int) -> list[int]:
    """floor(M/S) tokens per step, plus one in the first M mod S steps."""
    base, extra = divmod(block, steps_per_block)
    return [base + (n < extra) for n in range(steps_per_block)]


# (answer length, block length, tokens per step) -> steps = ceil(A / k), split evenly over the blocks
SETTINGS = [(40, 8, 4), (32, 32, 7), (22, 22, 3), (28, 14, 3), (24, 12, 3), (12, 4, 1)]


@pytest.mark.parametrize("answer_length,block_length,k", SETTINGS)
def test_tokens_per_step_follow_the_documented_rule_inside_the_current_block(answer_length, block_length, k):
    decoder = MarginalDecoder(tokens_per_step=k, block_length=block_length)
    out = decoder.decode(random_context(answer_length), prompts(), answer_length, torch.Generator().manual_seed(1))
    blocks = answer_length // block_length
    steps_per_block = -(-answer_length // k) // blocks
    expected = documented_counts(block_length, steps_per_block) * blocks
    assert out.nfe == len(expected)
    assert (out.commit_step >= 0).all()  # every position committed exactly once
    for row in out.commit_step:
        assert torch.bincount(row, minlength=out.nfe).tolist() == expected
        # the positions committed at step n all lie in block n // steps_per_block
        block_of_step = torch.arange(answer_length) // block_length
        assert torch.equal(row // steps_per_block, block_of_step)


def test_documented_rule_example():
    # M = 14 masks over S = 5 steps: 14 = 2 * 5 + 4, so 3, 3, 3, 3, 2
    assert documented_counts(14, 5) == [3, 3, 3, 3, 2]


def test_greedy_decoding_is_deterministic_and_sampling_is_not():
    context, p = random_context(16), prompts()
    greedy = [MarginalDecoder(tokens_per_step=2, block_length=8, temperature=0).decode(
        context, p, 16, torch.Generator().manual_seed(s)) for s in (1, 2)]
    assert torch.equal(greedy[0].tokens, greedy[1].tokens)
    assert torch.equal(greedy[0].commit_step, greedy[1].commit_step)
    sampled = [MarginalDecoder(tokens_per_step=2, block_length=8).decode(
        context, p, 16, torch.Generator().manual_seed(s)) for s in (1, 2)]
    assert not torch.equal(sampled[0].tokens, sampled[1].tokens)


def test_random_remasking_keeps_the_schedule_but_not_the_order():
    context, p = random_context(16), prompts()
    outs = [MarginalDecoder(tokens_per_step=2, block_length=8, temperature=0, remasking="random").decode(
        context, p, 16, torch.Generator().manual_seed(s)) for s in (1, 2)]
    for out in outs:
        for row in out.commit_step:
            assert torch.bincount(row).tolist() == [2] * 8
    assert not torch.equal(outs[0].commit_step, outs[1].commit_step)


def test_low_confidence_commits_the_most_confident_positions():
    """With greedy sampling, each step's committed positions are at least as confident as those left."""
    context, p = random_context(8), prompts(3)
    decoder = MarginalDecoder(tokens_per_step=4, block_length=8, temperature=0)
    out = decoder.decode(context, p, 8, torch.Generator().manual_seed(0))
    z = torch.cat([p, torch.full((3, 8), MASK)], dim=1)
    first = context.denoiser(z, torch.ones(3)).log_probs[:, PROMPT:].max(dim=-1).values
    for row in range(3):
        now, later = first[row][out.commit_step[row] == 0], first[row][out.commit_step[row] == 1]
        assert now.min() >= later.max()


def test_confidence_threshold_bounds():
    context, p = random_context(16), prompts()
    # threshold 0: every masked position of the block qualifies, capped at tokens_per_step
    everything = MarginalDecoder(tokens_per_step=8, block_length=8, threshold=0.0).decode(context, p, 16)
    assert everything.nfe == 2
    capped = MarginalDecoder(tokens_per_step=4, block_length=8, threshold=0.0).decode(context, p, 16)
    assert capped.nfe == 4
    # threshold 1: no random-model token is certain, so only the top one per step
    one = MarginalDecoder(tokens_per_step=8, block_length=8, threshold=1.0).decode(context, p, 16)
    assert one.nfe == 16
    assert all(torch.bincount(row).tolist() == [1] * 16 for row in one.commit_step)
