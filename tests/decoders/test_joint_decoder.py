"""The joint-block decoder: k = 1 is the marginal decoder, and both modes sample the head's joint."""

import math

import pytest
import torch
from torch import nn

from cache_cases import ANSWER, EOS, MASK, VOCAB, prompts
from cache_cases import context as random_model_context

from dlm_lightning.decoders.base import DecodeContext
from dlm_lightning.decoders.joint import JointDecoder
from dlm_lightning.decoders.marginal import MarginalDecoder
from dlm_lightning.heads.base import JointHead
from dlm_lightning.heads.dependency import DependencyHead
from dlm_lightning.models.denoiser import DenoiserOutput
from dlm_lightning.schedules.uniform import UniformSchedule


@pytest.mark.parametrize("mode", ["exact", "speculative"])
@pytest.mark.parametrize("options", [{}, {"remasking": "random"}, {"threshold": 0.3}, {"top_p": 0.7, "min_length": 5}])
def test_one_token_per_step_reproduces_the_marginal_decoder(mode, options):
    context, p = random_model_context(n_layers=1), prompts(6)
    marginal = MarginalDecoder(tokens_per_step=1, **options).decode(context, p, ANSWER, torch.Generator().manual_seed(5))
    joint = JointDecoder(tokens_per_step=1, mode=mode, **options).decode(context, p, ANSWER, torch.Generator().manual_seed(5))
    assert torch.equal(marginal.tokens, joint.tokens)
    assert torch.equal(marginal.commit_step, joint.commit_step)
    assert marginal.nfe == joint.nfe


@pytest.mark.parametrize("options", [{}, {"threshold": 0.3}, {"min_length": 5}])
def test_ranking_by_the_joint_at_one_token_per_step_reproduces_the_marginal_decoder(options):
    context, p = random_model_context(n_layers=1), prompts(6)
    marginal = MarginalDecoder(tokens_per_step=1, **options).decode(context, p, ANSWER, torch.Generator().manual_seed(5))
    joint = JointDecoder(tokens_per_step=1, rank="joint", **options).decode(context, p, ANSWER, torch.Generator().manual_seed(5))
    assert torch.equal(marginal.tokens, joint.tokens) and torch.equal(marginal.commit_step, joint.commit_step)


@pytest.mark.parametrize("head", ["marginals", "untrained"])
@pytest.mark.parametrize("options", [{"tokens_per_step": 4}, {"tokens_per_step": 8, "threshold": 0.2}])
def test_ranking_by_a_head_that_adds_nothing_is_the_marginal_decoder(options, head):
    """A head equal to the marginals draws the marginal drafts (same Gumbel noise) with the marginal
    confidences, so ranking by its joint commits exactly what the marginal decoder commits: a constructed
    one (recomputed prefix) and the real, zero-initialised DependencyHead (cached keys and values)."""
    context, p = random_model_context(n_layers=1), prompts(6)
    context.dependency_head = MarginalsHead() if head == "marginals" else \
        DependencyHead(16, VOCAB, p.shape[1] + ANSWER, n_heads=2).eval()
    marginal = MarginalDecoder(**options).decode(context, p, ANSWER, torch.Generator().manual_seed(5))
    joint = JointDecoder(rank="joint", **options).decode(context, p, ANSWER, torch.Generator().manual_seed(5))
    assert torch.equal(marginal.tokens, joint.tokens) and torch.equal(marginal.commit_step, joint.commit_step)
    assert marginal.nfe == joint.nfe


def test_the_joint_threshold_at_zero_commits_whole_blocks_as_the_joint_decoder_does():
    """threshold=0 and k = block length: every masked position of the block is sure, so each step commits
    the whole block, drawn through the (random, non-trivial) head exactly as decoder=joint draws it."""
    context, p = random_model_context(), prompts(6)
    joint = JointDecoder(tokens_per_step=8).decode(context, p, ANSWER, torch.Generator().manual_seed(5))
    ranked = JointDecoder(tokens_per_step=8, rank="joint", threshold=0.0).decode(
        context, p, ANSWER, torch.Generator().manual_seed(5))
    assert torch.equal(joint.tokens, ranked.tokens) and torch.equal(joint.commit_step, ranked.commit_step)
    assert ranked.nfe == ANSWER // 8


def test_the_head_changes_multi_token_steps():
    context, p = random_model_context(n_layers=1), prompts(6)
    marginal = MarginalDecoder(tokens_per_step=4).decode(context, p, ANSWER, torch.Generator().manual_seed(5))
    joint = JointDecoder(tokens_per_step=4).decode(context, p, ANSWER, torch.Generator().manual_seed(5))
    assert marginal.nfe == joint.nfe == ANSWER // 4
    assert not torch.equal(marginal.tokens, joint.tokens)


# ---- both modes sample the head's joint distribution ------------------------------------------------
A, B, X, Y, Z = 4, 5, 6, 7, 8  # first word in {A, B}, second in {X, Y}, then Z; the head prefers X after A
Q_SECOND = {A: (0.8, 0.2), B: (0.1, 0.9)}  # q(X | first), q(Y | first)


class IndependentDenoiser(nn.Module):
    """From each start: marginals p(first) = (0.3, 0.7) over {A, B}, p(second) = (0.6, 0.4) over {X, Y},
    then Z (where the sequence is long enough)."""

    def __init__(self, starts: tuple[int, ...] = (1,)):
        super().__init__()
        self.starts = starts

    def forward(self, z, t):
        probs = torch.full((*z.shape, VOCAB), 1e-12, dtype=torch.float64)
        for start in self.starts:
            probs[:, start, A], probs[:, start, B] = 0.3, 0.7
            probs[:, start + 1, X], probs[:, start + 1, Y] = 0.6, 0.4
            if z.shape[1] > start + 2:
                probs[:, start + 2, Z] = 1.0
        log_probs = (probs / probs.sum(-1, keepdim=True)).log().float()
        visible = z != MASK
        copied = torch.full_like(log_probs, float("-inf")).scatter(-1, z.unsqueeze(-1), 0.0)
        return DenoiserOutput(torch.where(visible.unsqueeze(-1), copied, log_probs), torch.zeros(*z.shape, 4))


class MarginalsHead(JointHead):
    """A head that adds nothing: every conditional is the backbone's marginal."""

    def forward(self, hidden, positions, tokens, base):
        return base.float().log_softmax(dim=-1)


class TableHead(nn.Module):  # a plain module with forward only: the decoder recomputes its prefix
    """A constructed head: the second word's conditional given the first is Q_SECOND, at the given
    absolute positions of the second word."""

    def __init__(self, second_positions: tuple[int, ...] = (2,)):
        super().__init__()
        self.second_positions = second_positions

    def forward(self, hidden, positions, tokens, base):
        out = base.float().clone()
        at_second = torch.isin(positions[:, 1], torch.tensor(self.second_positions))
        for first, (qx, qy) in Q_SECOND.items():
            rows = at_second & (tokens[:, 0] == first)
            table = torch.full((VOCAB,), float("-inf"))
            table[X], table[Y] = math.log(qx), math.log(qy)
            out[rows, 1] = table
        return out


def test_exact_and_speculative_modes_sample_the_heads_joint():
    n = 4000
    context = DecodeContext(IndependentDenoiser(), UniformSchedule(), MASK, EOS, dependency_head=TableHead())
    p = torch.zeros((n, 1), dtype=torch.long)
    p_first = {A: 0.3, B: 0.7}
    for mode in ("exact", "speculative"):
        out = JointDecoder(tokens_per_step=2, block_length=2, mode=mode).decode(
            context, p, 2, torch.Generator().manual_seed(11))
        if mode == "exact":
            assert out.nfe == 1
        for first in (A, B):
            for second, q in zip((X, Y), Q_SECOND[first]):
                expected = p_first[first] * q
                observed = ((out.tokens[:, 1] == first) & (out.tokens[:, 2] == second)).double().mean().item()
                # 4 binomial standard deviations
                assert abs(observed - expected) <= 4 * math.sqrt(expected * (1 - expected) / n), (mode, first, second)


def test_speculative_mode_leaves_positions_after_a_rejection_for_a_later_step():
    n = 2000
    context = DecodeContext(IndependentDenoiser(), UniformSchedule(), MASK, EOS, dependency_head=TableHead())
    out = JointDecoder(tokens_per_step=3, block_length=3, mode="speculative").decode(
        context, torch.zeros((n, 1), dtype=torch.long), 3, torch.Generator().manual_seed(2))
    # the second draft is accepted with probability sum_f p(f) sum_s min(p(s), q(s | f)); a rejected one
    # is redrawn and committed, and the third position (q = p there) waits for the next step
    accept = 0.3 * (min(0.6, 0.8) + min(0.4, 0.2)) + 0.7 * (min(0.6, 0.1) + min(0.4, 0.9))
    assert (out.commit_step[:, :2] == 0).all()
    in_one_step = (out.commit_step[:, 2] == 0).double().mean().item()
    assert abs(in_one_step - accept) <= 4 * math.sqrt(accept * (1 - accept) / n)
    assert out.nfe == 2 and (out.tokens[:, 3] == Z).all()


# ---- rows in different blocks at once (speculative rejections delay some rows) ----------------------
def test_speculative_rows_in_different_blocks_each_sample_their_own_block():
    n = 4000
    context = DecodeContext(IndependentDenoiser(starts=(1, 4)), UniformSchedule(), MASK, EOS,
                            dependency_head=TableHead(second_positions=(2, 5)))
    out = JointDecoder(tokens_per_step=3, block_length=3, mode="speculative").decode(
        context, torch.zeros((n, 1), dtype=torch.long), 6, torch.Generator().manual_seed(4))
    # a rejection leaves Z of the first block for step 1, while the other rows decode the second block then
    delayed = out.commit_step[:, 2] == 1
    assert 0.1 < delayed.double().mean() < 0.9 and (out.commit_step[~delayed, 3] == 1).all()
    assert (out.tokens[:, 3] == Z).all() and (out.tokens[:, 6] == Z).all()
    p_first = {A: 0.3, B: 0.7}
    for start in (1, 4):
        for first in (A, B):
            for second, q in zip((X, Y), Q_SECOND[first]):
                expected = p_first[first] * q
                pair = (out.tokens[:, start] == first) & (out.tokens[:, start + 1] == second)
                observed = pair.double().mean().item()
                assert abs(observed - expected) <= 4 * math.sqrt(expected * (1 - expected) / n), (start, first, second)


# ---- which positions a step commits: ranked by the marginal or by the head's joint --------------------
def test_ranking_by_the_joint_commits_the_position_the_head_is_sure_of_given_the_first():
    """Answer (first, second, Z), block 3, 2 tokens per step: the first step commits Z (certain) and the more
    confident of the two words. By the marginals, the second word (0.6 or 0.4) beats the first (0.3 or 0.7)
    only after A: P = 0.3. Ranked by the joint, the second word's confidence is q(second | first drawn):
    it wins when q > p(first), i.e. X after A (0.3 * 0.8 = 0.24) and Y after B (0.7 * 0.9 = 0.63): P = 0.87."""
    n = 4000
    context = DecodeContext(IndependentDenoiser(), UniformSchedule(), MASK, EOS, dependency_head=TableHead())
    p = torch.zeros((n, 1), dtype=torch.long)
    within = lambda expected, observed: abs(observed - expected) <= 4 * math.sqrt(expected * (1 - expected) / n)
    by_marginal = JointDecoder(tokens_per_step=2, block_length=3).decode(context, p, 3, torch.Generator().manual_seed(3))
    by_joint = JointDecoder(tokens_per_step=2, block_length=3, rank="joint").decode(
        context, p, 3, torch.Generator().manual_seed(3))
    for out in (by_marginal, by_joint):
        assert out.nfe == 2 and (out.commit_step[:, 2] == 0).all() and (out.tokens[:, 3] == Z).all()
        assert ((out.commit_step[:, :2] == 0).sum(dim=1) == 1).all()  # one of the two words per step
    second_first = by_marginal.commit_step[:, 1] == 0
    assert within(0.3, second_first.double().mean().item())
    second_first = by_joint.commit_step[:, 1] == 0
    assert within(0.87, second_first.double().mean().item())
    for word, expected in ((X, 0.24), (Y, 0.63)):
        assert within(expected, (second_first & (by_joint.tokens[:, 2] == word)).double().mean().item())
