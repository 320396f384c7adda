"""Information-weighted masking (the GenMD4 form): the masking rate depends on the token itself.

P(mask | x_i = v, t) = (1 - eps) t ** w_v with w_v = exp(beta * s_v), clipped to [clip_low, clip_high],
and s_v the standardised surprisal -log p(v) of the training split's (add-one smoothed) answer unigram,
standardised under that unigram (mean = its entropy), so the typical token has w = 1. beta > 0 keeps
rare tokens visible longer (revealed first), beta < 0 keeps frequent ones (easy first).

NELBO terms (full derivation in docs/schedules.md). The reverse model moves a masked position to v in
[s, t] with probability x_theta(v | z_t, t) (alpha_s(v) - alpha_t(v)) / (1 - alpha_t(v)), whose rate
is lambda_v(t) = w_v / t (eps cancels). The per-step KL between the true and the model reverse step,
in the limit s -> t, gives per masked position

    (1 / t) * [ w_{x_i} CE_i + sum_v w_v x_theta(v) - w_{x_i} ]
  = weight (w_{x_i} / t) * CE_i  +  extra ((1 / t) sum_v x_theta(v) (w_v - w_{x_i})),

the extra (correction) term written as a difference so that it is exactly 0 when all w are equal.
At t = 1 a fraction eps of tokens is still visible, so the prior is p(z_1^i) = (1 - eps) [MASK] + eps
unigram, and KL(q(z_1 | x) || p(z_1)) = eps * -log unigram(x_i) per position. Near t = 0 the shared
reconstruction term in ``nelbo`` applies. Being masked now tells the denoiser something about the
token, so it must see t (needs_time).

With ``learnable: true`` the exponents are softplus parameters trained by the two-sample leave-one-out
score-function estimator (two z_t draws per step, as GenMD4).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dlm_lightning.errors import require
from dlm_lightning.schedules.base import NoiseSchedule, power_clock


def standardised_surprisal(unigram: torch.Tensor) -> torch.Tensor:
    """(-log p(v) - H) / sd under p, for every v with p(v) > 0 (0 elsewhere), float64 [V]."""
    support = unigram > 0
    surprisal = torch.where(support, -unigram.clamp_min(1e-300).log(), 0.0)
    mean = (unigram * surprisal).sum()
    sd = (unigram * (surprisal - mean) ** 2).sum().sqrt()
    scores = (surprisal - mean) / sd if sd > 0 else torch.zeros_like(surprisal)
    return torch.where(support, scores, 0.0)


def information_exponents(unigram: torch.Tensor, beta: float, low: float, high: float) -> torch.Tensor:
    return (beta * standardised_surprisal(unigram)).exp().clamp(low, high).float()


def leave_one_out_surrogate(losses: tuple[torch.Tensor, torch.Tensor],
                            log_q: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Zero-valued [B] term whose gradient is the two-sample leave-one-out (RLOO) score-function
    estimate: 1/2 (L_1 - L_2) (grad log q_1 - grad log q_2)."""
    score = log_q[0] - log_q[1]
    return 0.5 * (losses[0] - losses[1]).detach() * (score - score.detach())


class InfoSchedule(NoiseSchedule):
    needs_time = True

    def __init__(self, beta: float = 1.0, clip: tuple[float, float] = (0.25, 4.0), eps: float = 0.0,
                 learnable: bool = False):
        super().__init__()
        require(isinstance(beta, (int, float)) and math.isfinite(beta), "beta", beta, "must be a finite number")
        clip = tuple(clip)
        require(len(clip) == 2 and 0 < clip[0] <= clip[1] < math.inf, "clip", list(clip),
                "must be [low, high] with 0 < low <= high")
        require(0.0 <= eps < 1.0, "eps", eps, "must be in [0, 1)")
        self.beta, self.clip, self.eps, self.learnable = float(beta), clip, float(eps), bool(learnable)
        self.training_draws = 2 if self.learnable else 1
        self.prompt_length, self.mask_id = 0, None

    def setup(self, info) -> None:
        self.prompt_length, self.mask_id = info.prompt_length, info.mask_id
        w = information_exponents(info.unigram(), self.beta, *self.clip)
        if self.learnable:  # softplus(raw) = w
            self.raw_exponents = nn.Parameter(w + torch.log(-torch.expm1(-w)))
        else:
            self.register_buffer("fixed_exponents", w)

    def exponents(self) -> torch.Tensor:
        """w_v, [V]."""
        return F.softplus(self.raw_exponents) if self.learnable else self.fixed_exponents

    def mask_prob(self, t, x0, distance):
        return (1.0 - self.eps) * t ** self.exponents()[x0]

    def weight(self, t, x0, distance):
        return self.exponents()[x0] / t

    def extra_term(self, t, x0, distance, log_probs):
        w = self.exponents()
        # sum_v x_theta(v) (w_v - w_x), shifted by a constant (free, as sum_v x_theta(v) = 1) so that it is
        # exactly 0 when all exponents are equal, without a [B, L, V] temporary for w_v - w_x
        shift = w.detach().min()
        correction = (log_probs.exp() * (w - shift)).sum(dim=-1) - (w[x0] - shift)
        return correction / t

    def unmask_prob(self, t, s, distance, probs):
        w = self.exponents()
        t_w = t ** w  # [B, V]
        return probs * ((t_w - s ** w) / t_w).unsqueeze(1)

    def time_from_uniform(self, u):
        w = self.exponents().detach()
        candidates = torch.ones_like(w, dtype=torch.bool)
        if self.mask_id is not None:
            candidates[self.mask_id] = False  # [MASK] never occurs in x0
        return power_clock(u, float(w[candidates].min()))

    def prior_term(self, x0, distance, log_prior):
        return self.eps * -log_prior[x0] if self.eps > 0 else None

    def log_forward_prob(self, t: torch.Tensor, x0: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """log q(z_t | x0) summed over answer positions, [B] (differentiable in the exponents)."""
        p_mask = self.mask_prob(t[:, None], x0, None).clamp(1e-12, 1 - 1e-6)
        log_q = torch.where(masked, p_mask.log(), torch.log1p(-p_mask))
        return log_q[:, self.prompt_length:].sum(dim=1)

    def gradient_surrogate(self, x0, distance, draws):
        if not self.learnable:
            return 0.0
        first, second = draws
        losses = (first.terms.sum(dim=1), second.terms.sum(dim=1))
        log_q = (self.log_forward_prob(first.t, x0, first.masked), self.log_forward_prob(second.t, x0, second.masked))
        return leave_one_out_surrogate(losses, log_q)
