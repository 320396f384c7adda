"""Uniform masking (MDLM, LLaDA): every position has alpha(t) = 1 - t, so P(mask) = t and weight 1/t."""

from __future__ import annotations

import torch

from dlm_lightning.schedules.base import NoiseSchedule


class UniformSchedule(NoiseSchedule):
    def mask_prob(self, t, x0, distance):
        return t.expand(x0.shape).to(torch.float32)

    def weight(self, t, x0, distance):
        return (1.0 / t).expand(x0.shape).to(torch.float32)

    def unmask_prob(self, t, s, distance, probs):
        return probs * ((t - s) / t).unsqueeze(-1)
