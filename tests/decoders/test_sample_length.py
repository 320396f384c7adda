"""sample_length: the answer's end drawn from the model's own length law at the first step.

The toy data: answers of A positions, ``CONTENT`` before the end and [EOS] from the end on, the length
drawn from LENGTH_LAW (the last entry: no end). Its exact denoiser gives every masked position the
posterior P(x_i = EOS | visible tokens) = P(length <= i | visible tokens), so a decoder that draws the
length from that law must reproduce LENGTH_LAW, and confidence ranking (the frequency collapse) does not.
"""

import pytest
import torch
from torch import nn

from dlm_lightning.data.padding import answer_lengths
from dlm_lightning.decoders.base import DecodeContext
from dlm_lightning.decoders.joint import JointDecoder
from dlm_lightning.decoders.marginal import MarginalDecoder
from dlm_lightning.models.denoiser import DenoiserOutput
from dlm_lightning.schedules.uniform import UniformSchedule

MASK, EOS, CONTENT, VOCAB, PROMPT, ANSWER = 0, 1, 2, 3, 1, 6
LENGTH_LAW = torch.tensor([0.0, 0.05, 0.1, 0.4, 0.2, 0.15, 0.1], dtype=torch.float64)  # lengths 0..6 (6 = none)


class ExactLengthDenoiser(nn.Module):
    """The posterior of the toy data given the visible answer tokens."""

    @torch.no_grad()
    def forward(self, z: torch.Tensor, t: torch.Tensor) -> DenoiserOutput:
        answer = z[:, PROMPT:]
        lengths = torch.arange(ANSWER + 1)
        offsets = torch.arange(ANSWER)
        ends_by_length = offsets.unsqueeze(0) >= lengths.unsqueeze(1)  # [lengths, A]: EOS there
        visible = answer != MASK
        consistent = ~(visible.unsqueeze(1) & ((answer == EOS).unsqueeze(1) != ends_by_length)).any(dim=2)
        posterior = torch.where(consistent, LENGTH_LAW, 0.0)
        posterior = posterior / posterior.sum(dim=1, keepdim=True)  # [B, lengths]
        p_eos = posterior @ ends_by_length.double()  # [B, A]
        probs = torch.zeros(*answer.shape, VOCAB, dtype=torch.float64)
        probs[..., EOS], probs[..., CONTENT] = p_eos, 1 - p_eos
        probs = torch.where(visible.unsqueeze(-1), nn.functional.one_hot(answer, VOCAB).double(), probs)
        prompt = nn.functional.one_hot(z[:, :PROMPT], VOCAB).double()
        log_probs = torch.cat([prompt, probs], dim=1).log().float()
        return DenoiserOutput(log_probs, torch.zeros(*z.shape, 4))


def context(head=None) -> DecodeContext:
    return DecodeContext(ExactLengthDenoiser(), UniformSchedule(), MASK, EOS, dependency_head=head)


def decoded_lengths(decoder, rows: int = 4000, seed: int = 0):
    prompts = torch.full((rows, PROMPT), CONTENT)
    out = decoder.decode(context(getattr(decoder, "test_head", None)), prompts, ANSWER,
                         torch.Generator().manual_seed(seed))
    return answer_lengths(out.tokens[:, PROMPT:], (EOS,)), out


def length_shares(lengths: torch.Tensor) -> torch.Tensor:
    return torch.bincount(lengths, minlength=ANSWER + 1).double() / len(lengths)


@pytest.mark.parametrize("block_length,k", [(6, 1), (2, 1), (6, 2)])
def test_drawn_lengths_follow_the_models_length_law(block_length, k):
    lengths, out = decoded_lengths(MarginalDecoder(tokens_per_step=k, block_length=block_length, sample_length=True))
    sigma = (LENGTH_LAW * (1 - LENGTH_LAW) / len(lengths)).sqrt()
    assert ((length_shares(lengths) - LENGTH_LAW).abs() <= 4 * sigma + 1e-12).all()
    # the end is committed at the first step and nothing before it is an end token
    ends_inside = lengths < ANSWER
    rows = torch.nonzero(ends_inside).squeeze(1)
    assert (out.commit_step[rows, lengths[rows]] == 0).all()
    assert out.nfe <= -(-ANSWER // k)


def test_confidence_ranking_without_it_concentrates_the_lengths():
    def tv(lengths):
        return float((length_shares(lengths) - LENGTH_LAW).abs().sum() / 2)
    plain, _ = decoded_lengths(MarginalDecoder(block_length=ANSWER))
    drawn, _ = decoded_lengths(MarginalDecoder(block_length=ANSWER, sample_length=True))
    # committing the surest position first piles the lengths onto the likeliest ones (measured: TV 0.355)
    assert tv(plain) > 0.3
    assert tv(drawn) < 0.03


def test_min_length_truncates_the_law_from_below():
    lengths, _ = decoded_lengths(MarginalDecoder(block_length=ANSWER, min_length=3, sample_length=True))
    assert lengths.min() >= 3
    # P(length <= 3) = 0.55 moves to length 3 exactly: the CDF is zero before min_length
    assert abs(float((lengths == 3).double().mean()) - 0.55) < 4 * (0.55 * 0.45 / len(lengths)) ** 0.5


def test_default_is_unchanged_and_draws_nothing_extra():
    generator_a, generator_b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    prompts = torch.full((50, PROMPT), CONTENT)
    a = MarginalDecoder(block_length=2).decode(context(), prompts, ANSWER, generator_a)
    b = MarginalDecoder(block_length=2, sample_length=False).decode(context(), prompts, ANSWER, generator_b)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(generator_a.get_state(), generator_b.get_state())


class EosLovingHead(nn.Module):
    """A head that would put [EOS] everywhere: the joint decoders must still respect the drawn end."""

    def forward(self, hidden, positions, drafts, base):
        boost = torch.zeros(VOCAB)
        boost[EOS] = 30.0
        return (base + boost).log_softmax(dim=-1)


@pytest.mark.parametrize("options", [dict(), dict(mode="speculative"), dict(rank="joint")],
                         ids=["joint", "speculative", "joint_rank"])
def test_joint_decoders_never_end_before_the_drawn_end(options):
    decoder = JointDecoder(tokens_per_step=3, block_length=ANSWER, sample_length=True, **options)
    decoder.test_head = EosLovingHead()
    lengths, out = decoded_lengths(decoder, rows=500)
    committed_first = (out.commit_step == 0) & (out.tokens[:, PROMPT:] == EOS)
    drawn = torch.where(committed_first.any(dim=1), committed_first.int().argmax(dim=1), ANSWER)
    assert torch.equal(lengths, drawn)


@pytest.mark.parametrize("cache", ["prefix", "dual"])
def test_cached_decoding_refills_after_the_drawn_end(cache):
    from test_decode_cache import ANSWER as LENGTH, PROMPT as PROMPT_LENGTH, CountingDenoiser, context as cached_context
    from test_decode_cache import prompts as cached_prompts

    def decode(**options):
        ctx = cached_context()
        ctx.denoiser = CountingDenoiser(ctx.denoiser)
        decoder = MarginalDecoder(tokens_per_step=2, block_length=LENGTH, sample_length=True, **options)
        return decoder.decode(ctx, cached_prompts(), LENGTH, torch.Generator().manual_seed(5)), ctx.denoiser.calls

    plain, _ = decode()
    cached, calls = decode(cache=cache)
    # one block: the first step's fill, then a refill so the committed end is in the cached keys
    assert [kind for kind, _ in calls] == ["fill", "fill"] + ["span"] * (plain.nfe - 2)
    assert torch.equal(cached.commit_step == 0, plain.commit_step == 0)  # the same drawn ends
    refilled, _ = decode(cache=cache, refresh_every=1)  # a full forward at every step: no cache at all
    assert torch.equal(refilled.tokens, plain.tokens)
