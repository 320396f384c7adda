"""Reduction: adaptive with every exponent 1 and info with beta = 0 are the uniform schedule, bit for bit,
on the same batch, times and noise: masks, loss terms, bound, time proposal and reverse step."""

from __future__ import annotations

import pytest
import torch

from dlm_lightning.data.info import DataInfo
from dlm_lightning.models.denoiser import DenoiserOutput, subs_log_probs
from dlm_lightning.masked_diffusion import answer_distance, bound_terms, draw_nelbo, stratified_times
from dlm_lightning.schedules.adaptive import AdaptiveSchedule
from dlm_lightning.schedules.info import InfoSchedule
from dlm_lightning.schedules.uniform import UniformSchedule

VOCAB, MASK, PROMPT, LENGTH, BATCH = 11, 10, 4, 16, 64


class RandomDenoiser(torch.nn.Module):
    """Fixed random logits per (position, token) plus a t-dependent shift, under SUBS."""

    def __init__(self):
        super().__init__()
        self.logits = torch.randn(LENGTH, VOCAB, generator=torch.Generator().manual_seed(0))

    def forward(self, z, t):
        logits = self.logits.expand(z.shape[0], -1, -1) + t[:, None, None] * torch.arange(VOCAB)
        return DenoiserOutput(subs_log_probs(logits.clone(), z, MASK), torch.zeros(z.shape[0], LENGTH, 1))


def _info() -> DataInfo:
    counts = torch.arange(1.0, VOCAB + 1) ** 2
    counts[MASK] = 0
    return DataInfo(vocab_size=VOCAB, mask_id=MASK, pad_id=0, eos_id=1, prompt_length=PROMPT, seq_len=LENGTH,
                    special_ids=(MASK,), token_counts=counts, tokenizer=None)


REDUCED = {
    "adaptive-geometric": lambda: AdaptiveSchedule(w_near=1.0, w_far=1.0),
    "adaptive-linear": lambda: AdaptiveSchedule(w_near=1.0, w_far=1.0, profile="linear"),
    "info-beta-0": lambda: InfoSchedule(beta=0.0),
}


@pytest.mark.parametrize("name", list(REDUCED))
def test_reduces_to_uniform_bit_for_bit(name):
    info = _info()
    uniform, other = UniformSchedule(), REDUCED[name]()
    uniform.setup(info)
    other.setup(info)
    g = torch.Generator().manual_seed(1)
    x0 = torch.randint(0, MASK, (BATCH, LENGTH), generator=g)
    u = stratified_times(BATCH, g)
    uniforms = torch.rand(x0.shape, generator=g)
    distance = answer_distance(LENGTH, PROMPT)
    log_prior = info.unigram().log().float()
    denoiser = RandomDenoiser()

    for schedule in (uniform, other):
        t, dt_du = schedule.time_from_uniform(u)
        assert torch.equal(t, u) and torch.equal(dt_du, torch.ones_like(u))
    draws = [draw_nelbo(denoiser, s, x0, u, uniforms, distance, PROMPT, MASK) for s in (uniform, other)]
    assert torch.equal(draws[0].masked, draws[1].masked)
    assert draws[0].masked.any() and torch.equal(draws[0].terms, draws[1].terms)
    bounds = [bound_terms(s, d, x0, distance, PROMPT, log_prior) for s, d in zip((uniform, other), draws)]
    assert torch.equal(bounds[0], bounds[1])

    t = torch.tensor([[0.8], [0.3]], dtype=torch.float64)
    s = torch.tensor([[0.7], [0.1]], dtype=torch.float64)
    probs = torch.rand(2, LENGTH - PROMPT, VOCAB, dtype=torch.float64, generator=g).softmax(-1)
    answer_distance_ = distance[PROMPT:]
    assert torch.equal(uniform.unmask_prob(t, s, answer_distance_, probs).expand(2, LENGTH - PROMPT, VOCAB),
                       other.unmask_prob(t, s, answer_distance_, probs))


def test_info_correction_term_is_exactly_zero_when_exponents_are_equal():
    schedule = InfoSchedule(beta=0.0)
    schedule.setup(_info())
    log_probs = torch.randn(3, LENGTH, VOCAB).log_softmax(-1)
    x0 = torch.randint(0, MASK, (3, LENGTH))
    assert torch.equal(schedule.extra_term(torch.full((3, 1), 0.01), x0, None, log_probs), torch.zeros(3, LENGTH))
