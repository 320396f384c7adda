"""Distance-adaptive masking: P(mask_i | t) = t ** w_i, with w_i falling with the distance d_i of
position i from the visible context (the prompt end; the sequence start for unconditional text).

alpha_i(t) = 1 - t ** w_i gives the NELBO weight -alpha_i'(t) / (1 - alpha_i(t)) = w_i / t. Near
positions (w > 1) stay visible longer in the forward process, so the reverse process reveals them
first. Masking does not look at token values, so the optimal denoiser ignores t and no extra term
appears. All w = 1 is the uniform schedule, bit for bit.
"""

from __future__ import annotations

import torch

from dlm_lightning.errors import require, require_positive
from dlm_lightning.schedules.base import NoiseSchedule, power_clock

PROFILES = ("geometric", "linear")


def distance_exponents(answer_length: int, w_near: float, w_far: float, profile: str) -> torch.Tensor:
    """w(d) for d = 0 .. answer_length - 1, from w_near at d = 0 to w_far at the last answer position."""
    fraction = torch.arange(answer_length, dtype=torch.float64) / max(answer_length - 1, 1)
    if profile == "geometric":
        exponents = w_near * (w_far / w_near) ** fraction
    else:
        exponents = w_near + (w_far - w_near) * fraction
    return exponents.float()


class AdaptiveSchedule(NoiseSchedule):
    def __init__(self, w_near: float = 2.0, w_far: float = 0.5, profile: str = "geometric"):
        super().__init__()
        require_positive(w_near=w_near, w_far=w_far)
        require(profile in PROFILES, "profile", profile, f"one of {', '.join(PROFILES)}")
        self.w_near, self.w_far, self.profile = float(w_near), float(w_far), profile
        # per distance from the visible context; sized for the data by setup()
        self.register_buffer("exponents", distance_exponents(1, self.w_near, self.w_far, profile))

    def setup(self, info) -> None:
        self.exponents = distance_exponents(info.answer_length, self.w_near, self.w_far, self.profile)

    def _exponents(self, distance: torch.Tensor) -> torch.Tensor:
        return self.exponents[distance.clamp(max=self.exponents.numel() - 1)]

    def mask_prob(self, t, x0, distance):
        return (t ** self._exponents(distance)).expand(x0.shape)

    def weight(self, t, x0, distance):
        return (self._exponents(distance) / t).expand(x0.shape)

    def unmask_prob(self, t, s, distance, probs):
        w = self._exponents(distance)
        t_w = t ** w
        return probs * ((t_w - s ** w) / t_w).unsqueeze(-1)

    def time_from_uniform(self, u):
        return power_clock(u, float(self.exponents.min()))
