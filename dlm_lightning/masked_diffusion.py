"""The continuous-time NELBO of masked diffusion, estimated by Monte Carlo for any NoiseSchedule.

With t = t(u) the schedule's time proposal (``time_from_uniform``; t = u for uniform) and a = t(u_min):

NELBO(x) = (1 - u_min) E_{u ~ U(u_min, 1)} E_{z_t} [ dt/du * sum_i 1[z_t^i = MASK] (w_i(t) CE_i + extra_i) ]
           + sum_i P(z_a^i = MASK) * -log prior(x^i)     (reconstruction: a last step a -> 0 fills what is
                                                          still masked from the unigram prior)
           + KL(q(z_1 | x) || p(z_1))                    (prior term; 0 when everything is masked at t = 1)

Every piece is an exact term of a valid generative model, so this is an upper bound on -log p(x) for
every schedule. Training may use another u range (module.train_t_range); the reported bound may not.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dlm_lightning.models.denoiser import DenoiserOutput
from dlm_lightning.schedules.base import NoiseSchedule

T_MIN = 1e-3


def stratified_times(batch_size: int, generator: torch.Generator | None = None, t_min: float = T_MIN,
                     t_max: float = 1.0, device=None) -> torch.Tensor:
    """One uniform offset, spread evenly over the batch: lower variance than i.i.d. times."""
    offset = torch.rand((), generator=generator, device=device)
    u = (offset + torch.arange(batch_size, device=device) / batch_size) % 1.0
    return t_min + (t_max - t_min) * u


def answer_distance(seq_len: int, prompt_length: int, device=None) -> torch.Tensor:
    """Distance of each position from the visible context (the prompt end); 0 inside the prompt."""
    return (torch.arange(seq_len, device=device) - prompt_length).clamp(min=0)


def corrupt(x0: torch.Tensor, t: torch.Tensor, schedule: NoiseSchedule, distance: torch.Tensor,
            prompt_length: int, mask_id: int, uniforms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples z_t ~ q(z_t | x0); prompt positions are never masked. Returns (z_t, masked)."""
    masked = uniforms < schedule.mask_prob(t[:, None], x0, distance)
    masked[:, :prompt_length] = False
    return torch.where(masked, torch.full_like(x0, mask_id), x0), masked


def nelbo_terms(schedule: NoiseSchedule, out: DenoiserOutput, x0: torch.Tensor, masked: torch.Tensor,
                t: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
    """Per-position NELBO contributions in nats, [B, L] (zero where not masked)."""
    t = t[:, None]
    cross_entropy = -out.log_probs.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
    terms = schedule.weight(t, x0, distance) * cross_entropy
    extra = schedule.extra_term(t, x0, distance, out.log_probs)
    if extra is not None:
        terms = terms + extra
    return torch.where(masked, terms, torch.zeros_like(terms))


@dataclass
class Draw:
    """One Monte-Carlo draw of the NELBO integrand for a batch."""

    terms: torch.Tensor  # [B, L] nats: masked positions' integrand times dt/du, zero elsewhere
    masked: torch.Tensor  # [B, L] bool
    t: torch.Tensor  # [B]
    out: DenoiserOutput


def draw_nelbo(denoiser, schedule: NoiseSchedule, x0: torch.Tensor, u: torch.Tensor, uniforms: torch.Tensor,
               distance: torch.Tensor, prompt_length: int, mask_id: int) -> Draw:
    """Corrupts x0 at the times t(u), runs the denoiser and returns the integrand (u ~ U(u_min, 1), [B])."""
    t, dt_du = schedule.time_from_uniform(u)
    z, masked = corrupt(x0, t, schedule, distance, prompt_length, mask_id, uniforms)
    out = denoiser(z, t)
    terms = nelbo_terms(schedule, out, x0, masked, t, distance) * dt_du[:, None]
    return Draw(terms, masked, t, out)


def bound_terms(schedule: NoiseSchedule, draw: Draw, x0: torch.Tensor, distance: torch.Tensor,
                prompt_length: int, log_prior: torch.Tensor, u_min: float = T_MIN) -> torch.Tensor:
    """Per-position NELBO bound in nats, [B, L], for a draw made with u ~ U(u_min, 1); sums to the bound."""
    t_min, _ = schedule.time_from_uniform(draw.t.new_full(draw.t.shape, u_min))
    return (1.0 - u_min) * draw.terms + boundary_terms(schedule, x0, distance, prompt_length, t_min, log_prior)


def boundary_terms(schedule: NoiseSchedule, x0: torch.Tensor, distance: torch.Tensor, prompt_length: int,
                   t_min: torch.Tensor, log_prior: torch.Tensor) -> torch.Tensor:
    """The reconstruction term below t_min [B] and the prior term at t = 1, per answer position [B, L]."""
    terms = schedule.mask_prob(t_min[:, None], x0, distance) * -log_prior[x0]
    prior = schedule.prior_term(x0, distance, log_prior)
    if prior is not None:
        terms = terms + prior
    answer = torch.arange(x0.shape[1], device=x0.device) >= prompt_length
    return torch.where(answer, terms, torch.zeros_like(terms))
