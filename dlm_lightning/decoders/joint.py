"""Joint-block decoding: the marginal decoder's positions, sampled jointly through the dependency head.

Positions are chosen exactly as ``MarginalDecoder`` chooses them (``BlockDecoder``'s rule, same random
draws), so the two differ only in how a step's k tokens are drawn. Taken left to right, the first is the
marginal draw and each later one comes from the head's p(x_sigma(j) | z_t, x_sigma(<j)):

- ``exact``: k - 1 cheap head calls per denoiser call, each sampling the next token as
  argmax(log q_j + G_j) with the Gumbel noise G_j that drew the marginal draft at that position
  (common random numbers). G_j is independent of the earlier tokens, so this is an exact draw from
  q_j given them, and it keeps the draft (the token the position was chosen for) wherever the head
  agrees with the marginal;
- ``speculative``: one head call scores the marginal drafts; draft j is accepted while
  u < min(1, q_j / p_j); the first rejected one is redrawn from norm(max(0, q_j - p_j)) and the
  positions after it stay masked for a later step. Either way the step's tokens follow the head's
  joint; speculative mode may need more denoiser calls (NFE) when drafts are rejected.

With k = 1 no head call is made and the output equals the marginal decoder's for the same generator.
"""

from __future__ import annotations

import torch

from dlm_lightning.decoders.base import DecodeContext, gumbel_argmax
from dlm_lightning.decoders.block import BlockDecoder, Window, take_positions
from dlm_lightning.errors import require
from dlm_lightning.models.denoiser import DenoiserOutput

MODES = ("exact", "speculative")


class JointDecoder(BlockDecoder):
    needs_head = True

    def __init__(self, tokens_per_step: int = 1, temperature: float = 1.0, top_p: float = 1.0,
                 min_length: int = 0, block_length: int = 8, remasking: str = "low_confidence",
                 threshold: float | None = None, mode: str = "exact", cache: str = "none",
                 refresh_every: int | None = None):
        super().__init__(tokens_per_step, temperature, top_p, min_length, block_length, remasking, threshold,
                         cache, refresh_every)
        require(mode in MODES, "mode", mode, f"one of {', '.join(MODES)}")
        self.mode = mode

    def _fill(self, context: DecodeContext, out: DenoiserOutput, prompt_length: int, chosen: torch.Tensor,
              draft: torch.Tensor, window: Window, generator) -> tuple[torch.Tensor, torch.Tensor]:
        count = chosen.sum(dim=1)
        k = int(count.max())
        if k <= 1:
            return draft, chosen
        length = chosen.shape[1]
        offsets = torch.arange(length, device=chosen.device)
        # the chosen answer offsets of each row, left to right; columns j >= count[row] are padding
        order = torch.where(chosen, offsets, length + offsets).argsort(dim=1)[:, :k]
        real = torch.arange(k, device=chosen.device) < count.unsqueeze(1)
        columns = out.columns(order + prompt_length)  # a cached step's outputs cover only a span
        hidden = take_positions(out.hidden, columns)
        base = take_positions(out.log_probs, columns)
        positions = order + prompt_length
        tokens = draft.gather(1, order)
        head = context.dependency_head
        if self.mode == "exact":
            noise = window.take(window.gumbel, order)
            for j in range(1, k):
                log_q = head(hidden[:, : j + 1], positions[:, : j + 1], tokens[:, : j + 1], base[:, : j + 1])[:, j]
                weights, _ = self.sampling_weights(log_q, order[:, j], context.end_ids)
                tokens[:, j] = (weights + noise[:, j]).argmax(dim=-1)
            keep = real
        else:
            drafted_w = window.take(window.sample_w, order)
            tokens, keep = self._verify(head, hidden, positions, tokens, base, drafted_w, order, real,
                                        context.end_ids, generator)
        filled = draft.scatter(1, order, tokens)
        return filled, torch.zeros_like(chosen).scatter(1, order, keep)

    def _verify(self, head, hidden, positions, drafts, base, p_weights, order, real, eos_id, generator):
        """Speculative sampling of the drafts against the head; returns (tokens, which to commit)."""
        q_weights, _ = self.sampling_weights(head(hidden, positions, drafts, base), order, eos_id)
        ratio = (q_weights - p_weights).gather(-1, drafts.unsqueeze(-1)).squeeze(-1).exp()
        u = torch.rand(ratio.shape, generator=generator, device=ratio.device, dtype=torch.float64)
        rejected = (u >= ratio) & real
        rejected[:, 0] = False  # q = p for the first position by construction
        k = drafts.shape[1]
        first = torch.where(rejected.any(dim=1), rejected.int().argmax(dim=1), k)  # k: all accepted
        at = first.clamp(max=k - 1).view(-1, 1, 1).expand(-1, 1, q_weights.shape[-1])
        q, p = q_weights.gather(1, at).squeeze(1).exp(), p_weights.gather(1, at).squeeze(1).exp()
        residual = (q - p).clamp_min(0.0)
        # rounding can leave a rejection with no residual mass; q itself is then the right law
        residual = torch.where(residual.sum(dim=-1, keepdim=True) > 0, residual, q)
        redrawn = gumbel_argmax(residual.log(), generator)
        column = torch.arange(k, device=drafts.device)
        tokens = torch.where(column == first.unsqueeze(1), redrawn.unsqueeze(1), drafts)
        return tokens, real & (column <= first.unsqueeze(1))

