"""Ancestral token-marginal sampling that commits exactly ``tokens_per_step`` positions per step.

Step n goes from t = 1 - n/N to s = 1 - (n+1)/N (N = ceil(A / k) steps). The schedule's reverse step
gives, for each masked position, the probability mass of leaving [MASK] (``unmask_prob`` summed over
tokens). We reveal exactly k positions, drawn without replacement in proportion to that mass
(Gumbel top-k), and sample each one's token from its normalised reverse-step distribution. For the
uniform schedule this is the reverse process conditioned on k reveals per step (a uniformly random
order); position- and token-dependent schedules reveal their preferred positions first.
"""

from __future__ import annotations

import torch

from dlm_lightning.decoders.base import (DecodeContext, DecodeOutput, Decoder, gumbel_argmax, gumbel_topk,
                                         masked_canvas, reverse_time_steps)
from dlm_lightning.masked_diffusion import answer_distance


class AncestralDecoder(Decoder):
    def _decode(self, context: DecodeContext, prompts, answer_length, generator) -> DecodeOutput:
        batch, prompt_length = prompts.shape
        device = prompts.device
        steps = self.steps_for(answer_length)
        z, answer, commit_step = masked_canvas(prompts, answer_length, context.mask_id)
        distance = answer_distance(z.shape[1], prompt_length, device)[prompt_length:]
        for step, (t, s) in enumerate(reverse_time_steps(batch, steps, device)):
            count = min(self.tokens_per_step, answer_length - step * self.tokens_per_step)
            log_probs = context.denoiser(z, t[:, 0].float()).log_probs[:, prompt_length:]
            probs = self.sampling_weights(log_probs, distance, context.end_ids)[0].exp()
            move = context.schedule.unmask_prob(t, s, distance, probs)
            mass = move.sum(dim=-1)
            masked = answer == context.mask_id
            chosen = gumbel_topk(torch.where(masked, mass.log(), float("-inf")), count, generator)
            # a position whose reverse mass underflowed to 0 falls back to the denoiser's prediction
            token_weights = torch.where((mass > 0).unsqueeze(-1), move, probs)
            picked = torch.gather(token_weights, 1, chosen.unsqueeze(-1).expand(-1, -1, move.shape[-1]))
            answer.scatter_(1, chosen, gumbel_argmax(picked.log(), generator))
            commit_step.scatter_(1, chosen, step)
        return DecodeOutput(z, nfe=steps, commit_step=commit_step)
