"""The factorisation gap on an enumerable distribution: exact head -> the conditional total correlation
of the committed positions; no head or an untrained head -> 0."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent.parent / "schedules"))
from exact_diffusion import LENGTH, MASK, SEQUENCES, SYMBOLS, VOCAB, time_blind_denoiser, toy_probs  # noqa: E402

from dlm_lightning.heads.dependency import DependencyHead  # noqa: E402
from dlm_lightning.metrics.factorisation import (  # noqa: E402
    GapAccumulator, joint_gain, pairs_at_distance, window_subsets)
from dlm_lightning.models.denoiser import DenoiserOutput  # noqa: E402

P = toy_probs()


def conditional(given: dict[int, torch.Tensor], position: int) -> torch.Tensor:
    """p(x_position | x_j = given[j] for all j) per row, float64 [B, VOCAB]."""
    rows = next(iter(given.values())).shape[0] if given else 1
    weights = P.expand(rows, -1).clone()
    for j, values in given.items():
        weights = weights * (SEQUENCES[None, :, j] == values[:, None])
    one_hot = nn.functional.one_hot(SEQUENCES[:, position], VOCAB).double()
    return (weights @ one_hot) / weights.sum(dim=1, keepdim=True)


class DenoiserWithState(nn.Module):
    """The exact time-blind denoiser, whose hidden state at every position carries z itself."""

    def __init__(self):
        super().__init__()
        self.exact = time_blind_denoiser(P)

    def forward(self, z, t):
        out = self.exact(z, t)
        return DenoiserOutput(out.log_probs, z.double()[:, None, :].expand(-1, LENGTH, -1))


class ExactHead(nn.Module):
    """p(x_sigma(j) | visible tokens of z, x_sigma(<j)) from the table."""

    def forward(self, hidden, positions, tokens, base_log_probs):
        z = hidden[:, 0].long()
        out = []
        for j in range(positions.shape[1]):
            given = {i: z[:, i] for i in range(LENGTH) if bool((z[:, i] != MASK).all())}
            given.update({int(positions[0, m]): tokens[:, m] for m in range(j)})
            probs = conditional(given, int(positions[0, j])).expand(tokens.shape[0], -1)
            out.append(probs.clamp_min(1e-300).log())
        return torch.stack(out, dim=1)


def entropy(probs: torch.Tensor) -> torch.Tensor:
    return -(probs * probs.clamp_min(1e-300).log()).sum(dim=-1)


def exact_total_correlation(visible: list[int], block: list[int]) -> float:
    """E_{x_V}[sum_i H(x_i | x_V) - H(x_B | x_V)], straight from the joint table."""
    total = 0.0
    for values in torch.cartesian_prod(*[torch.arange(SYMBOLS)] * len(visible)).view(-1, len(visible)) if visible \
            else [torch.tensor([])]:
        match = torch.ones(len(SEQUENCES), dtype=torch.bool)
        for j, v in zip(visible, values.tolist()):
            match &= SEQUENCES[:, j] == v
        mass = P[match].sum()
        if mass == 0:
            continue
        cond = P[match] / mass
        codes = (SEQUENCES[match][:, block] * SYMBOLS ** torch.arange(len(block))).sum(dim=1)
        joint = torch.zeros(SYMBOLS ** len(block), dtype=torch.float64).index_add_(0, codes, cond)
        marginals = [torch.zeros(SYMBOLS, dtype=torch.float64).index_add_(0, SEQUENCES[match][:, i], cond)
                     for i in block]
        total += float(mass) * float(sum(entropy(m) for m in marginals) - entropy(joint))
    return total


@pytest.mark.parametrize("visible, block", [([], [0, 1, 2]), ([], [0, 2]), ([0], [1, 2]), ([1], [0, 2])])
def test_with_an_exact_head_the_gap_is_the_exact_conditional_total_correlation(visible, block):
    denoiser = DenoiserWithState()
    x0 = SEQUENCES
    z = torch.where(torch.isin(torch.arange(LENGTH), torch.tensor(visible, dtype=torch.long)), x0, MASK)
    out = denoiser(z, torch.full((len(x0),), 0.5))  # t < 1: visible tokens are possible
    positions = torch.tensor(block).expand(len(x0), -1)
    gain = joint_gain(ExactHead(), out, x0, positions)
    expected = exact_total_correlation(visible, block)
    assert expected > 0.05  # the toy data has real dependencies
    # the exact denoiser hands over float32 marginals: agreement to float32 precision
    assert float((P * gain).sum()) == pytest.approx(expected, rel=1e-6)


def test_without_a_head_or_with_an_untrained_head_the_gap_is_zero():
    denoiser = DenoiserWithState()
    z = torch.full_like(SEQUENCES, MASK)
    out = denoiser(z, torch.ones(len(SEQUENCES)))
    positions = torch.tensor([0, 1, 2]).expand(len(SEQUENCES), -1)
    assert torch.equal(joint_gain(None, out, SEQUENCES, positions), torch.zeros(len(SEQUENCES), dtype=torch.float64))
    untrained = DependencyHead(d_model=LENGTH, vocab_size=VOCAB, max_seq_len=LENGTH, n_heads=1, window=3)
    out = DenoiserOutput(out.log_probs, out.hidden.float())
    assert joint_gain(untrained, out, SEQUENCES, positions).abs().max().item() < 1e-6


def test_position_choice_keeps_to_masked_positions_in_one_window():
    masked = torch.tensor([[True, False, True, True, False, True, True, True],
                           [True, False, False, False, False, False, False, True]])
    g = torch.Generator().manual_seed(0)
    seen = 0
    for _ in range(20):
        positions, usable = window_subsets(masked, 2, 4, g)
        assert not usable[1]  # its two masked positions are 7 apart: never in one window of 4
        if usable[0]:
            row = positions[0]
            assert masked[0, row].all() and row[0] < row[1] and row[1] - row[0] < 4
            seen += 1
    assert seen >= 10  # only the anchor 7 (1 of 6 masked positions) leaves a window without a pair
    pairs, usable = pairs_at_distance(masked, 3, g)
    assert usable.tolist() == [True, False] and pairs[0, 1] - pairs[0, 0] == 3 and masked[0, pairs[0]].all()


def test_the_accumulator_reports_mean_and_standard_error_per_setting():
    totals = GapAccumulator()
    totals.add(("k", 2), torch.tensor([0.1, 0.3]))
    totals.add(("k", 2), torch.tensor([0.2]))
    totals.add(("distance", 1), torch.tensor([0.5]))
    by_k = [r for r in totals.rows() if r["by"] == "k"][0]
    assert by_k["gap_nats_per_token"] == pytest.approx(0.2) and by_k["rows"] == 3
    assert by_k["stderr"] == pytest.approx(0.1 / math.sqrt(3))
    assert [r for r in totals.rows() if r["by"] == "distance"][0]["positions"] == 2
