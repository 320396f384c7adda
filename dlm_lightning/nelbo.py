"""The continuous-time NELBO of masked diffusion, estimated by Monte Carlo for any NoiseSchedule.

NELBO(x) = E_t E_{z_t} [ sum_i 1[z_t^i = MASK] * (w_i(t) * CE_i + extra_i) ],  t ~ U(eps, 1).
"""

from __future__ import annotations

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
