"""The information-weighted schedule: scores, exponents, prior term, checkpointed state, and the learnable
exponents' leave-one-out score-function gradient against the exact gradient of the expected loss."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from exact_diffusion import LENGTH, MASK, SEQUENCES, time_blind_denoiser, toy_info, toy_probs
from dlm_lightning.errors import ConfigError
from dlm_lightning.masked_diffusion import answer_distance, draw_nelbo, nelbo_terms
from dlm_lightning.schedules.info import InfoSchedule, information_exponents, standardised_surprisal

U_MIN = 1e-3


def test_scores_are_standardised_under_the_unigram_and_grow_with_rarity():
    unigram = torch.tensor([0.6, 0.25, 0.1, 0.05, 0.0], dtype=torch.float64)
    scores = standardised_surprisal(unigram)
    assert float((unigram * scores).sum()) == pytest.approx(0.0, abs=1e-12)
    assert float((unigram * scores ** 2).sum()) == pytest.approx(1.0, abs=1e-12)
    assert (scores[:4].diff() > 0).all() and scores[4] == 0
    assert torch.equal(standardised_surprisal(torch.full((4,), 0.25, dtype=torch.float64)), torch.zeros(4))


def test_exponents_follow_the_sign_of_beta_and_the_clip():
    unigram = torch.tensor([0.6, 0.25, 0.1, 0.05], dtype=torch.float64)
    scores = standardised_surprisal(unigram)
    anchor_first = information_exponents(unigram, 1.0, 0.01, 100.0)
    assert torch.allclose(anchor_first, scores.exp().float())
    assert (anchor_first.diff() > 0).all()  # rarer tokens: larger w, visible longer
    easy_first = information_exponents(unigram, -1.0, 0.01, 100.0)
    assert (easy_first.diff() < 0).all()
    clipped = information_exponents(unigram, 5.0, 0.5, 2.0)
    assert clipped.min() == 0.5 and clipped.max() == 2.0


def test_prior_term_is_eps_times_the_unigram_surprisal():
    schedule = InfoSchedule(eps=0.01)
    schedule.setup(toy_info())
    x0 = torch.tensor([[0, 1, 2]])
    log_prior = torch.tensor([0.5, 0.3, 0.2, 0.0]).log()
    assert torch.allclose(schedule.prior_term(x0, None, log_prior), -0.01 * log_prior[x0])
    no_eps = InfoSchedule()
    no_eps.setup(toy_info())
    assert no_eps.prior_term(x0, None, log_prior) is None


def test_exponents_are_checkpointed_and_learnable_ones_are_parameters():
    fixed = InfoSchedule(beta=1.0)
    fixed.setup(toy_info())
    assert "fixed_exponents" in fixed.state_dict() and not list(fixed.parameters())
    learnable = InfoSchedule(beta=1.0, learnable=True)
    learnable.setup(toy_info())
    assert [name for name, _ in learnable.named_parameters()] == ["raw_exponents"]
    assert torch.allclose(learnable.exponents(), fixed.exponents(), rtol=1e-6)
    assert fixed.training_draws == 1 and learnable.training_draws == 2
    assert InfoSchedule.needs_time


@pytest.mark.parametrize("kwargs, key", [({"clip": [0.0, 4.0]}, "clip"), ({"clip": [2.0, 1.0]}, "clip"),
                                         ({"eps": 1.0}, "eps"), ({"beta": math.inf}, "beta")])
def test_bad_settings_name_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=f"^{key}="):
        InfoSchedule(**kwargs)


# ---- the learnable exponents' gradient ---------------------------------------------------------------


def _exact_expected_loss(schedule, denoiser, p, nodes: int = 48) -> torch.Tensor:
    """E_{u ~ U(u_min, 1)} E_x E_{z_t | x} [training loss], by enumerating x and mask patterns and
    Gauss-Legendre quadrature over u; differentiable in the schedule's exponents."""
    roots, weights = np.polynomial.legendre.leggauss(nodes)
    u_nodes = torch.tensor((roots + 1) / 2 * (1 - U_MIN) + U_MIN, dtype=torch.float32)
    patterns = torch.tensor(list(itertools.product([False, True], repeat=LENGTH)))
    n_x, n_c = len(SEQUENCES), len(patterns)
    u = u_nodes.repeat_interleave(n_x * n_c)
    x0 = SEQUENCES.repeat_interleave(n_c, 0).repeat(nodes, 1)
    masked = patterns.repeat(n_x * nodes, 1)
    weight = (torch.tensor(weights / 2).repeat_interleave(n_x * n_c) * p.repeat_interleave(n_c).repeat(nodes))
    t, dt_du = schedule.time_from_uniform(u)
    m = schedule.mask_prob(t[:, None], x0, None)
    q = torch.where(masked, m, 1 - m).prod(dim=1)
    distance = answer_distance(LENGTH, 0)
    terms = nelbo_terms(schedule, denoiser(torch.where(masked, MASK, x0), t), x0, masked, t, distance)
    return (weight * q.double() * (terms.sum(1) * dt_du).double()).sum()


def _monte_carlo_gradients(schedule, denoiser, p, batches: int, per_sequence: int, surrogate: bool):
    g = torch.Generator().manual_seed(0)
    distance, grads = answer_distance(LENGTH, 0), []
    for _ in range(batches):
        x0 = SEQUENCES.repeat_interleave(per_sequence, 0)
        u = U_MIN + (1 - U_MIN) * torch.rand(len(x0), generator=g)
        draws = [draw_nelbo(denoiser, schedule, x0, u, torch.rand(x0.shape, generator=g), distance, 0, MASK)
                 for _ in range(schedule.training_draws)]
        per_row = torch.stack([d.terms.sum(1) for d in draws]).mean(0)
        if surrogate:
            per_row = per_row + schedule.gradient_surrogate(x0, distance, draws)
        loss = (per_row.double().view(len(SEQUENCES), per_sequence).mean(1) * p).sum()
        grads.append(torch.autograd.grad(loss, schedule.raw_exponents)[0].double())
    grads = torch.stack(grads)
    return grads.mean(0), grads.std(0) / math.sqrt(batches)


def test_leave_one_out_gradient_is_unbiased_for_the_exponents():
    p = toy_probs()
    schedule = InfoSchedule(beta=1.0, learnable=True)
    schedule.setup(toy_info())
    denoiser = time_blind_denoiser(p)  # not optimal for this schedule, so the exponents' gradient is not 0
    exact = torch.autograd.grad(_exact_expected_loss(schedule, denoiser, p), schedule.raw_exponents)[0].double()
    exact = exact / (1 - U_MIN)  # the training loss averages over u instead of integrating
    symbols = slice(0, MASK)
    assert exact[symbols].abs().min() > 0.1 and exact[MASK] == 0

    estimate, se = _monte_carlo_gradients(schedule, denoiser, p, batches=16, per_sequence=64, surrogate=True)
    assert ((estimate - exact)[symbols].abs() < 3 * se[symbols]).all(), (estimate, exact, se)
    # without the score-function term the gradient misses how the exponents change the masks
    pathwise, pathwise_se = _monte_carlo_gradients(schedule, denoiser, p, batches=4, per_sequence=64, surrogate=False)
    assert ((pathwise - exact)[symbols].abs() > 3 * (se + pathwise_se)[symbols]).any()


def test_surrogate_has_zero_value():
    p = toy_probs()
    schedule = InfoSchedule(beta=1.0, learnable=True)
    schedule.setup(toy_info())
    x0 = SEQUENCES.repeat_interleave(4, 0)
    distance = answer_distance(LENGTH, 0)
    u = torch.rand(len(x0))
    draws = [draw_nelbo(time_blind_denoiser(p), schedule, x0, u, torch.rand(x0.shape), distance, 0, MASK)
             for _ in range(2)]
    surrogate = schedule.gradient_surrogate(x0, distance, draws)
    assert surrogate.shape == (len(x0),) and torch.equal(surrogate, torch.zeros_like(surrogate))
    assert InfoSchedule().gradient_surrogate(x0, distance, draws[:1]) == 0.0
