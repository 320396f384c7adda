"""The NELBO estimator on cases with exact answers.

The toy distribution (paper.md section 1, "I like tennis" / "He likes tennis") is small enough to
enumerate: with a denoiser that returns its exact conditionals, the continuous-time NELBO of masked
diffusion equals -log p(x) exactly (paper.md section 3). The integral over t is computed with
Gauss-Legendre nodes (exact here: for the uniform schedule the integrand is a polynomial in t of degree
< answer length) and the expectation over z_t by enumerating the 2^3 mask patterns, with the library's
own corrupt / nelbo_terms / draw_nelbo doing the work.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlm_lightning.data.info import DataInfo
from dlm_lightning.decoders.ancestral import AncestralDecoder
from dlm_lightning.models.denoiser import Denoiser, DenoiserOutput, subs_log_probs
from dlm_lightning.module import MaskedDiffusionLM
from dlm_lightning.masked_diffusion import T_MIN, answer_distance, bound_terms, corrupt, draw_nelbo, nelbo_terms, stratified_times
from dlm_lightning.schedules.uniform import UniformSchedule

VOCAB = ["[PAD]", "[MASK]", "[BOS]", "i", "he", "like", "likes", "tennis", "chess"]
PAD, MASK, BOS = 0, 1, 2
ANSWERS = {(3, 5, 7): 0.4, (4, 6, 7): 0.3, (3, 5, 8): 0.2, (4, 6, 8): 0.1}  # i like tennis, he likes tennis...
PROMPT, LENGTH = 1, 4  # [BOS] + a 3-token answer


class ExactConditionals(nn.Module):
    """A backbone whose logits are the log of the toy distribution's exact conditionals given the visible tokens."""

    def __init__(self):
        super().__init__()
        self.register_buffer("answers", torch.tensor(list(ANSWERS)))
        self.register_buffer("probs", torch.tensor(list(ANSWERS.values()), dtype=torch.float64))
        self.unused = nn.Parameter(torch.zeros(1))  # an optimizer needs a parameter

    def forward(self, tokens, t=None):
        z = tokens[:, PROMPT:]
        consistent = ((z[:, None, :] == MASK) | (z[:, None, :] == self.answers[None])).all(-1)
        weights = consistent.double() * self.probs
        mass = torch.einsum("bs,siv->biv", weights, F.one_hot(self.answers, len(VOCAB)).double())
        prompt = torch.zeros(tokens.shape[0], PROMPT, len(VOCAB), dtype=torch.float64)
        logits = torch.cat([prompt, mass.log()], dim=1).float()
        return logits, torch.zeros(*tokens.shape, 1)


def _sequences(answer, count):
    return torch.tensor([[BOS, *answer]] * count)


def _gauss_legendre(n, low=0.0, high=1.0):
    nodes, weights = np.polynomial.legendre.leggauss(n)
    return low + (high - low) * (nodes + 1) / 2, weights * (high - low) / 2


def _mask_patterns():
    """All 8 patterns of masked answer positions, as uniforms that realise them (prompt uniforms 0: any t masks them)."""
    patterns = torch.tensor([[(k >> i) & 1 for i in range(LENGTH - PROMPT)] for k in range(2 ** (LENGTH - PROMPT))])
    uniforms = torch.cat([torch.zeros(len(patterns), PROMPT), 1.0 - patterns.float()], dim=1)
    return patterns.bool(), uniforms


# ---- stratified times ----------------------------------------------------------------------------------
@pytest.mark.parametrize("batch, low, high", [(8, T_MIN, 1.0), (5, 0.2, 0.6), (1, T_MIN, 1.0)])
def test_stratified_times_put_one_time_in_each_stratum(batch, low, high):
    t = stratified_times(batch, torch.Generator().manual_seed(3), low, high)
    assert t.shape == (batch,) and ((t >= low) & (t < high)).all()
    strata = ((t - low) / (high - low) * batch).floor().long()
    assert sorted(strata.tolist()) == list(range(batch))
    gaps = t.sort().values.diff()
    assert torch.allclose(gaps, torch.full_like(gaps, (high - low) / batch), atol=1e-6)


def test_stratified_times_depend_only_on_the_generator():
    a = stratified_times(16, torch.Generator().manual_seed(7))
    assert torch.equal(a, stratified_times(16, torch.Generator().manual_seed(7)))
    assert not torch.equal(a, stratified_times(16, torch.Generator().manual_seed(8)))
    assert stratified_times(4).min() >= T_MIN == 1e-3


# ---- corruption ------------------------------------------------------------------------------------------
def test_corrupt_masks_exactly_where_uniforms_fall_below_t_and_never_the_prompt():
    torch.manual_seed(0)
    x0 = torch.randint(2, 9, (6, 10))
    t = torch.tensor([0.0, 0.2, 0.5, 0.8, 1.0, 1.0])
    uniforms = torch.rand(x0.shape)
    uniforms[4] = 0.0  # every position would be masked
    distance = answer_distance(10, 3)
    z, masked = corrupt(x0, t, UniformSchedule(), distance, 3, MASK, uniforms)
    expected = uniforms < t[:, None]
    expected[:, :3] = False
    assert torch.equal(masked, expected)
    assert torch.equal(z, torch.where(expected, MASK, x0))
    assert torch.equal(z[:, :3], x0[:, :3])  # the prompt, even at t = 1 with uniforms 0
    assert not masked[0].any() and masked[4, 3:].all()


def test_answer_distance():
    assert answer_distance(7, 3).tolist() == [0, 0, 0, 0, 1, 2, 3]


# ---- the SUBS parameterisation and the per-position terms ------------------------------------------------
def test_subs_never_predicts_mask_and_copies_visible_tokens():
    logits = torch.randn(2, 4, len(VOCAB))
    z = torch.tensor([[BOS, MASK, 5, MASK], [BOS, 3, MASK, 8]])
    log_probs = subs_log_probs(logits, z, MASK)
    visible = z != MASK
    assert torch.isneginf(log_probs[..., MASK]).all()
    assert torch.equal(log_probs[visible].argmax(-1), z[visible])
    assert (log_probs[visible].max(-1).values == 0).all()
    assert torch.allclose(log_probs[~visible].exp().sum(-1), torch.ones(int((~visible).sum())))


def test_nelbo_terms_are_weight_times_cross_entropy_at_masked_positions():
    x0 = torch.tensor([[BOS, 3, 5, 7]])
    probs = torch.full((1, 4, len(VOCAB)), 0.1)
    probs[0, 1, 3], probs[0, 2, 5], probs[0, 3, 7] = 0.5, 0.25, 0.125
    out = DenoiserOutput(probs.log(), torch.zeros(1, 4, 1))
    masked = torch.tensor([[False, True, False, True]])
    terms = nelbo_terms(UniformSchedule(), out, x0, masked, torch.tensor([0.25]), answer_distance(4, 1))
    # weight 1/t = 4; CE = -log 0.5 at position 1 and -log 0.125 at position 3
    assert torch.allclose(terms, torch.tensor([[0.0, 4 * math.log(2), 0.0, 4 * math.log(8)]]))


# ---- the exact NELBO -------------------------------------------------------------------------------------
@pytest.mark.parametrize("answer", list(ANSWERS))
def test_nelbo_with_exact_conditionals_equals_the_negative_log_likelihood(answer):
    schedule, denoiser = UniformSchedule(), Denoiser(ExactConditionals(), MASK, needs_time=False)
    patterns, uniforms = _mask_patterns()
    x0 = _sequences(answer, len(patterns))
    distance = answer_distance(LENGTH, PROMPT)
    nodes, weights = _gauss_legendre(8)
    integral = 0.0
    for t, w in zip(nodes, weights):
        u = torch.full((len(patterns),), float(t))
        draw = draw_nelbo(denoiser, schedule, x0, u, uniforms, distance, PROMPT, MASK)
        assert torch.equal(draw.masked[:, PROMPT:], patterns) and not draw.masked[:, :PROMPT].any()
        m = schedule.mask_prob(draw.t[:, None], x0, distance)[:, PROMPT:].double()
        p_pattern = torch.where(patterns, m, 1 - m).prod(dim=1)  # q(z_t) of each pattern
        integral += w * float((p_pattern * draw.terms.double().sum(dim=1)).sum())
    assert integral == pytest.approx(-math.log(ANSWERS[answer]), abs=1e-5)


def _toy_module():
    info = DataInfo(vocab_size=len(VOCAB), mask_id=MASK, pad_id=PAD, eos_id=PAD, prompt_length=PROMPT,
                    seq_len=LENGTH, special_ids=(PAD, MASK, BOS), token_counts=torch.ones(len(VOCAB), dtype=torch.float64),
                    tokenizer=None)
    return MaskedDiffusionLM(ExactConditionals(), UniformSchedule(), AncestralDecoder(), info,
                             optimizer=functools.partial(torch.optim.AdamW, lr=1e-3), seed=5)


def test_validation_estimate_matches_the_exact_value_within_its_standard_error():
    """The module's own evaluation path (noise per sample index, bound terms, NELBOBound metric)."""
    module = _toy_module()
    n = 3000
    for answer, p in ANSWERS.items():
        batch = {"input_ids": _sequences(answer, n), "index": torch.arange(n)}
        u, uniforms = module._eval_noise(batch["index"], LENGTH)
        assert ((u >= T_MIN) & (u <= 1)).all()
        draw = module._nelbo(batch["input_ids"], u, uniforms)
        per_sample = bound_terms(module.schedule, draw, batch["input_ids"], module.distance, PROMPT,
                                 module.log_unigram).sum(dim=1).double()
        assert (per_sample[:, None] >= 0).all()
        mean, se = per_sample.mean().item(), per_sample.std().item() / math.sqrt(n)
        assert se < 0.1  # the test can tell a wrong weight (e.g. 1/t^2 or 1) from the right one
        assert abs(mean - -math.log(p)) < 4 * se + 0.01, (answer, mean, se)

        module.val_nelbo.reset()
        module._eval_step(batch, 0, module.val_nelbo, module.val_samples, decode=False)
        reported = module.val_nelbo.compute()
        answer_tokens = LENGTH - PROMPT
        assert reported["nelbo"].item() == pytest.approx(mean / answer_tokens, rel=1e-6)
        assert reported["bpt"].item() == pytest.approx(mean / answer_tokens / math.log(2), rel=1e-6)
        assert reported["ppl"].item() == pytest.approx(math.exp(mean / answer_tokens), rel=1e-6)


def test_evaluation_noise_is_a_function_of_the_sample_index():
    module = _toy_module()
    u_all, uniforms_all = module._eval_noise(torch.arange(10), LENGTH)
    u_some, uniforms_some = module._eval_noise(torch.tensor([7, 2]), LENGTH)
    assert torch.equal(u_some, u_all[[7, 2]]) and torch.equal(uniforms_some, uniforms_all[[7, 2]])
