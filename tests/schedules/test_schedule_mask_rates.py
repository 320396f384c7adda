"""Mask rates: the empirical masking frequency of ``nelbo.corrupt`` per position (adaptive) and per token
(info) matches the formula, within 4 binomial standard errors; prompt positions are never masked."""

from __future__ import annotations

import torch

from dlm_lightning.data.info import DataInfo
from dlm_lightning.masked_diffusion import answer_distance, corrupt
from dlm_lightning.schedules.adaptive import AdaptiveSchedule, distance_exponents
from dlm_lightning.schedules.info import InfoSchedule, standardised_surprisal

MASK, PROMPT, LENGTH, ROWS = 7, 3, 13, 40_000


def _info(counts) -> DataInfo:
    return DataInfo(vocab_size=len(counts), mask_id=MASK, pad_id=0, eos_id=1, prompt_length=PROMPT,
                    seq_len=LENGTH, special_ids=(MASK,), token_counts=torch.tensor(counts, dtype=torch.float64),
                    tokenizer=None)


def _within_binomial_error(frequency: torch.Tensor, p: torch.Tensor, n: torch.Tensor | int) -> bool:
    se = (p * (1 - p) / n).sqrt()
    return bool(((frequency - p).abs() <= 4 * se + 1e-12).all())


def test_adaptive_exponent_profiles():
    geometric = distance_exponents(5, 4.0, 0.25, "geometric")
    assert torch.allclose(geometric, torch.tensor([4.0, 2.0, 1.0, 0.5, 0.25]))
    linear = distance_exponents(5, 3.0, 1.0, "linear")
    assert torch.allclose(linear, torch.tensor([3.0, 2.5, 2.0, 1.5, 1.0]))
    assert torch.equal(distance_exponents(1, 2.0, 0.5, "geometric"), torch.tensor([2.0]))


def test_adaptive_mask_rate_per_position():
    schedule = AdaptiveSchedule(w_near=3.0, w_far=0.3)
    schedule.setup(_info([1.0] * 8))
    distance = answer_distance(LENGTH, PROMPT)
    x0 = torch.zeros(ROWS, LENGTH, dtype=torch.long)
    t = torch.full((ROWS,), 0.6)
    _, masked = corrupt(x0, t, schedule, distance, PROMPT, MASK, torch.rand(x0.shape))
    frequency = masked.double().mean(0)
    w = distance_exponents(LENGTH - PROMPT, 3.0, 0.3, "geometric").double()
    assert not masked[:, :PROMPT].any()
    assert _within_binomial_error(frequency[PROMPT:], 0.6 ** w, ROWS)
    assert (frequency[PROMPT:].diff() > 0).all()  # farther from the prompt: masked more often


def test_info_mask_rate_per_token():
    counts = [0.0, 400.0, 200.0, 100.0, 50.0, 25.0, 12.0, 0.0]  # w from 0.69 to 4 (clipped)
    eps = 0.1
    schedule = InfoSchedule(beta=0.5, clip=(0.25, 4.0), eps=eps)
    info = _info(counts)
    schedule.setup(info)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(1, MASK, (ROWS, LENGTH), generator=g)
    t = torch.full((ROWS,), 0.5)
    _, masked = corrupt(x0, t, schedule, answer_distance(LENGTH, PROMPT), PROMPT, MASK, torch.rand(x0.shape, generator=g))
    answer_tokens, answer_masked = x0[:, PROMPT:].flatten(), masked[:, PROMPT:].flatten().double()
    n = torch.bincount(answer_tokens, minlength=8).double()
    frequency = torch.bincount(answer_tokens, weights=answer_masked, minlength=8) / n.clamp_min(1)
    w = (0.5 * standardised_surprisal(info.unigram())).exp().clamp(0.25, 4.0)
    expected = (1 - eps) * 0.5 ** w
    tokens = torch.arange(1, MASK)
    assert _within_binomial_error(frequency[tokens], expected[tokens], n[tokens])
    # beta > 0: rarer tokens stay visible longer
    assert (frequency[tokens].diff() < 0).all()
