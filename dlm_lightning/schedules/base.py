"""The noise-schedule interface: everything the loss and the samplers may ask of a schedule.

alpha_i(t) is the probability that token i is still visible at time t (1 at t=0, ~0 at t=1). It may
depend on the position (through its distance from the visible context) and on the token itself.
Shapes: t and s are [B, 1]; x0 is [B, L]; distance is [L] (long, 0 = first answer position).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn


class NoiseSchedule(nn.Module, ABC):
    #: the denoiser must see t (true when masking itself carries information about the token)
    needs_time: bool = False
    #: z_t draws per training step (2 for a schedule trained by a leave-one-out score-function estimator)
    training_draws: int = 1

    def setup(self, info) -> None:
        """Fits data statistics (a DataInfo) before training; buffers set here go into checkpoints."""

    @abstractmethod
    def mask_prob(self, t: torch.Tensor, x0: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
        """1 - alpha_i(t), [B, L]."""

    @abstractmethod
    def weight(self, t: torch.Tensor, x0: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
        """The NELBO weight -alpha_i'(t) / (1 - alpha_i(t)) of a masked position's cross-entropy, [B, L]."""

    def extra_term(self, t: torch.Tensor, x0: torch.Tensor, distance: torch.Tensor,
                   log_probs: torch.Tensor) -> torch.Tensor | None:
        """Any further NELBO term per masked position, [B, L] (None when there is none)."""
        return None

    @abstractmethod
    def unmask_prob(self, t: torch.Tensor, s: torch.Tensor, distance: torch.Tensor,
                    probs: torch.Tensor) -> torch.Tensor:
        """Reverse step t -> s < t for positions masked at t: P(becomes v at s), [B, L, V].

        ``probs`` is the denoiser's prediction x_theta(v | z_t), [B, L, V]; the mass missing from
        each row is the probability of staying masked.
        """

    def time_from_uniform(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The Monte-Carlo time proposal: maps u ~ U(u_min, 1), [B], to (t, dt/du), both [B].

        The NELBO integral over t equals the integral over u of integrand(t(u)) * dt/du, so any proposal
        is unbiased; schedules with exponents below 1 use one under which every position is masked with
        probability <= u_min at the lower end, so the bound loses nothing below it (see ``power_clock``).
        """
        return u, torch.ones_like(u)

    def prior_term(self, x0: torch.Tensor, distance: torch.Tensor, log_prior: torch.Tensor) -> torch.Tensor | None:
        """KL(q(z_1 | x0) || p(z_1)) per position, [B, L]; None when every token is masked at t = 1.

        ``log_prior`` [V] is the log unigram the generative model draws tokens visible at t = 1 from.
        """
        return None

    def gradient_surrogate(self, x0: torch.Tensor, distance: torch.Tensor, draws: list) -> torch.Tensor | float:
        """A per-sequence training term, [B], whose value is 0 and whose gradient is the part of the
        schedule's own gradient that the loss misses (score-function gradients of learnable masking
        rates). ``draws`` are the step's ``training_draws`` nelbo.Draw objects. 0.0 by default.
        """
        return 0.0


def power_clock(u: torch.Tensor, k: float) -> tuple[torch.Tensor, torch.Tensor]:
    """t = u ** (1/k) and dt/du, for schedules whose smallest exponent is k: P(mask) = t ** w <= u for
    every w >= k, and the importance weight keeps the variance of the t ** k positions as for uniform."""
    t = u ** (1.0 / k)  # exact for k = 1: t = u, dt/du = 1
    return t, t ** (1.0 - k) / k
