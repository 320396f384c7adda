"""Ancestral token-marginal sampling: each masked position unmasks by the schedule's reverse step."""

from __future__ import annotations

import torch

from dlm_lightning.decoders.base import DecodeContext, DecodeOutput, Decoder, gumbel_argmax, tempered
from dlm_lightning.nelbo import answer_distance


class AncestralDecoder(Decoder):
    """Runs the reverse process on a uniform time grid of ceil(A / tokens_per_step) steps from 1 to 0.

    Every position masked at t becomes token v at s with the schedule's ``unmask_prob`` (the last step
    reaches s = 0, where everything is revealed), so tokens_per_step is the average commit rate.
    """

    def _decode(self, context: DecodeContext, prompts, answer_length, generator) -> DecodeOutput:
        batch, prompt_length = prompts.shape
        device = prompts.device
        steps = self.steps_for(answer_length)
        z = torch.cat([prompts, prompts.new_full((batch, answer_length), context.mask_id)], dim=1)
        commit_step = torch.full((batch, answer_length), -1, dtype=torch.long, device=device)
        distance = answer_distance(z.shape[1], prompt_length, device)[prompt_length:]
        grid = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64, device=device)
        for step in range(steps):
            t = grid[step].expand(batch, 1).float()
            s = grid[step + 1].expand(batch, 1).float()
            log_probs = context.denoiser(z, t[:, 0]).log_probs[:, prompt_length:]
            probs = tempered(log_probs, self.temperature).exp()
            move = context.schedule.unmask_prob(t.double(), s.double(), distance, probs)
            stay = (1.0 - move.sum(dim=-1, keepdim=True)).clamp_min(0.0)
            choice = gumbel_argmax(torch.cat([move, stay], dim=-1).log(), generator)
            masked = z[:, prompt_length:] == context.mask_id
            commit = masked & (choice < move.shape[-1])
            z[:, prompt_length:] = torch.where(commit, choice, z[:, prompt_length:])
            commit_step[commit] = step
        return DecodeOutput(z, nfe=steps, commit_step=commit_step)
