"""Time-grid ancestral sampling: the schedule's own reverse process on a grid 1 = t_0 > ... > t_N = 0.

At each step t -> s every masked position independently becomes token v with the schedule's reverse
probability ``unmask_prob(t, s)`` (for ``info`` that depends on v itself) or stays masked with the
rest of the mass, so a step may reveal any number of positions (none, or all). As the grid is refined
this approaches the exact reverse process of every schedule, including token-dependent ones, where
``decoder=ancestral`` (exactly k reveals per step) does not. The last step (s = 0) reveals everything.

``steps`` sets N; null takes ceil(answer_length / tokens_per_step), the NFE budget of the other
decoders. A step in which nothing was revealed leaves z_t unchanged, so for a schedule whose denoiser
ignores t the previous prediction is reused without a call: NFE counts real denoiser calls only.
"""

from __future__ import annotations

import math

import torch

from dlm_lightning.decoders.base import (DecodeContext, DecodeOutput, Decoder, gumbel_argmax, masked_canvas,
                                         reverse_time_steps)
from dlm_lightning.errors import require
from dlm_lightning.masked_diffusion import answer_distance


class TimeGridDecoder(Decoder):
    def __init__(self, tokens_per_step: int = 1, temperature: float = 1.0, top_p: float = 1.0,
                 min_length: int = 0, steps: int | None = None):
        super().__init__(tokens_per_step, temperature, top_p, min_length)
        require(steps is None or (isinstance(steps, int) and steps >= 1), "steps", steps,
                "must be null (ceil(answer_length / tokens_per_step)) or an integer >= 1")
        self.steps = steps

    def steps_for(self, answer_length: int) -> int:
        return self.steps if self.steps is not None else math.ceil(answer_length / self.tokens_per_step)

    def step_weights(self, context: DecodeContext, log_probs: torch.Tensor, t: torch.Tensor, s: torch.Tensor,
                     distance: torch.Tensor) -> torch.Tensor:
        """P(a position masked at t becomes v at s) for v < V, and P(stays masked) last: [B, A, V + 1]."""
        probs = self.sampling_weights(log_probs, distance, context.end_ids)[0].exp()
        move = context.schedule.unmask_prob(t, s, distance, probs).double()
        stay = (1.0 - move.sum(dim=-1, keepdim=True)).clamp_min(0.0)
        if float(s.max()) == 0.0:
            stay = torch.zeros_like(stay)  # t = 0: nothing is left masked (rounding aside)
        return torch.cat([move, stay], dim=-1)

    def _decode(self, context: DecodeContext, prompts, answer_length, generator) -> DecodeOutput:
        batch, prompt_length = prompts.shape
        device = prompts.device
        steps = self.steps_for(answer_length)
        z, answer, commit_step = masked_canvas(prompts, answer_length, context.mask_id)
        distance = answer_distance(z.shape[1], prompt_length, device)[prompt_length:]
        nfe, log_probs, changed = 0, None, True
        for step, (t, s) in enumerate(reverse_time_steps(batch, steps, device)):
            masked = answer == context.mask_id
            if not masked.any():
                break
            if changed or context.schedule.needs_time:
                log_probs = context.denoiser(z, t[:, 0].float()).log_probs[:, prompt_length:]
                nfe += 1
            weights = self.step_weights(context, log_probs, t, s, distance)
            choice = gumbel_argmax(weights.log(), generator)  # V means "stays masked"
            reveal = masked & (choice < weights.shape[-1] - 1)
            answer.copy_(torch.where(reveal, choice, answer))
            commit_step.masked_fill_(reveal, step)
            changed = bool(reveal.any())
        return DecodeOutput(z, nfe=nfe, commit_step=commit_step)
