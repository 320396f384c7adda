"""Exactness: with the exact denoiser the Monte-Carlo NELBO of every schedule equals the exact NLL of an
enumerable distribution (within 3 standard errors); a wrong denoiser gives a strictly larger value."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from exact_diffusion import (LENGTH, MASK, SEQUENCES, SYMBOLS, ExactDenoiser, exact_nll, expectation,
                             monte_carlo_nelbo, time_blind_denoiser, toy_info, toy_probs)
from dlm_lightning.schedules.adaptive import AdaptiveSchedule
from dlm_lightning.schedules.info import InfoSchedule
from dlm_lightning.schedules.uniform import UniformSchedule

DRAWS = 800  # per sequence: 21,600 draws per estimate

SCHEDULES = {
    "uniform": lambda: UniformSchedule(),
    "adaptive-geometric": lambda: AdaptiveSchedule(w_near=2.0, w_far=0.5),
    "adaptive-linear": lambda: AdaptiveSchedule(w_near=3.0, w_far=0.4, profile="linear"),
    "info-anchor-first": lambda: InfoSchedule(beta=1.0),
    "info-easy-first": lambda: InfoSchedule(beta=-1.0),
}


def _setup(name: str, prompt_length: int):
    schedule = SCHEDULES[name]()
    schedule.setup(toy_info(prompt_length))
    return schedule


@pytest.mark.parametrize("prompt_length", [0, 1])
@pytest.mark.parametrize("name", list(SCHEDULES))
def test_exact_denoiser_gives_the_exact_nll_and_a_wrong_one_more(name, prompt_length):
    p = toy_probs()
    schedule = _setup(name, prompt_length)
    exact, wrong = monte_carlo_nelbo(schedule, [ExactDenoiser(schedule, p, prompt_length),
                                                ExactDenoiser(schedule, p, prompt_length, blend=0.3)],
                                     p, DRAWS, seed=1 + prompt_length, prompt_length=prompt_length)
    estimate, se = expectation(exact, p)
    nll = exact_nll(p, prompt_length)
    assert abs(estimate - nll) < 3 * se, (estimate, nll, se)
    excess, excess_se = expectation(wrong - exact, p)  # paired: same noise for both denoisers
    assert excess > 3 * excess_se > 0


@pytest.mark.parametrize("name", ["info-anchor-first", "info-easy-first"])
def test_info_schedule_needs_the_time_conditioned_posterior(name):
    """Being masked says something about the token: the time-blind conditionals lose a lot."""
    p = toy_probs()
    schedule = _setup(name, 0)
    exact, blind = monte_carlo_nelbo(schedule, [ExactDenoiser(schedule, p), time_blind_denoiser(p)], p, DRAWS, seed=3)
    excess, excess_se = expectation(blind - exact, p)
    assert excess > 3 * excess_se > 0


def _prior_mismatch(p: torch.Tensor, eps: float, log_prior: torch.Tensor) -> float:
    """KL(q(z_1) || p(z_1)) with q(z_1^i | x) = (1 - eps) [MASK] + eps x_i and p(z_1^i) = (1 - eps) [MASK]
    + eps prior: what any bound with this prior must pay above the NLL, even with the exact denoiser."""
    kl = 0.0
    for z in itertools.product(range(SYMBOLS + 1), repeat=LENGTH):
        z = torch.tensor(z)
        visible = z != MASK
        consistent = ((SEQUENCES == z) | ~visible).all(dim=1)
        n_visible = int(visible.sum())
        q_given_x = eps ** n_visible * (1 - eps) ** (LENGTH - n_visible)
        q = float(p[consistent].sum()) * q_given_x
        prior = eps ** n_visible * (1 - eps) ** (LENGTH - n_visible) * math.exp(float(log_prior[z[visible]].sum()))
        kl += q * math.log(q / prior) if q > 0 else 0.0
    return kl


def test_info_schedule_with_eps_pays_exactly_the_prior_mismatch():
    p, eps = toy_probs(), 0.2
    schedule = InfoSchedule(beta=1.0, eps=eps)
    schedule.setup(toy_info(0))
    log_prior = torch.tensor([0.1, 0.1, 0.8, 0.0]).log()  # far from the data, so the mismatch is large
    (values,) = monte_carlo_nelbo(schedule, [ExactDenoiser(schedule, p)], p, DRAWS, seed=4, log_prior=log_prior)
    estimate, se = expectation(values, p)
    expected = exact_nll(p) + _prior_mismatch(p, eps, log_prior)
    assert expected > exact_nll(p) + 6 * se  # the prior term is visible at this sample size
    assert abs(estimate - expected) < 3 * se, (estimate, expected, se)
