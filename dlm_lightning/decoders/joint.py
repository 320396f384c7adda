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

``rank`` decides which positions a step commits (exact mode only):

- ``marginal`` (default): the marginal decoder's choice, above;
- ``joint``: every masked position of the current block is first drawn through the head (left to right,
  as exact mode draws a step's tokens), then positions are counted and chosen by the head's conditional
  probability of their drawn token instead of the marginal one (with ``threshold``: all positions whose
  conditional stays confident). The committed tokens are part of one joint draw of the block, so tokens
  committed together were drawn together. A position's rank conditions on the draws to its left, which
  may themselves stay uncommitted and be redrawn later: the rule is a heuristic, like confidence
  ranking itself (any subset of a joint draw chosen independently of the draw would be an exact sample).
  It costs M - 1 head calls per step for a block with M masked positions, against k - 1.

With k = 1 no head call is made (in either ranking) and the output equals the marginal decoder's for the
same generator.
"""

from __future__ import annotations

import torch

from dlm_lightning.decoders.base import DecodeContext, gumbel_argmax
from dlm_lightning.decoders.block import BlockDecoder, Window, take_positions
from dlm_lightning.errors import require
from dlm_lightning.heads.base import step_conditionals
from dlm_lightning.models.denoiser import DenoiserOutput

MODES = ("exact", "speculative")
RANKS = ("marginal", "joint")


class JointDecoder(BlockDecoder):
    needs_head = True

    def __init__(self, tokens_per_step: int = 1, temperature: float = 1.0, top_p: float = 1.0,
                 min_length: int = 0, block_length: int = 8, remasking: str = "low_confidence",
                 threshold: float | None = None, mode: str = "exact", cache: str = "none",
                 refresh_every: int | None = None, rank: str = "marginal", position_decay: float = 0.0,
                 sample_length: bool = False):
        super().__init__(tokens_per_step, temperature, top_p, min_length, block_length, remasking, threshold,
                         cache, refresh_every, position_decay, sample_length)
        require(mode in MODES, "mode", mode, f"one of {', '.join(MODES)}")
        require(rank in RANKS, "rank", rank, f"one of {', '.join(RANKS)}")
        require(rank == "marginal" or (mode == "exact" and remasking == "low_confidence"), "rank", rank,
                "rank=joint needs mode=exact and remasking=low_confidence (it ranks by the head's confidence)")
        self.mode, self.rank = mode, rank

    def _rank(self, context: DecodeContext, out: DenoiserOutput, prompt_length: int, eligible: torch.Tensor,
              draft: torch.Tensor, confidence: torch.Tensor, window: Window) -> tuple[torch.Tensor, torch.Tensor]:
        if self.rank == "marginal" or self.tokens_per_step == 1:
            return draft, confidence
        return self._draw_in_order(context, out, prompt_length, eligible, draft, confidence, window)

    def _fill(self, context: DecodeContext, out: DenoiserOutput, prompt_length: int, chosen: torch.Tensor,
              draft: torch.Tensor, window: Window, generator) -> tuple[torch.Tensor, torch.Tensor]:
        if self.rank == "joint" or int(chosen.sum(dim=1).max()) <= 1:
            return draft, chosen  # ranked by the joint: the drafts were already drawn through the head
        if self.mode == "exact":
            filled, _ = self._draw_in_order(context, out, prompt_length, chosen, draft, None, window)
            return filled, chosen
        order, real, hidden, positions, base = self._step_inputs(out, prompt_length, chosen)
        drafted_w = window.take(window.sample_w, order)
        tokens, keep = self._verify(context.dependency_head, hidden, positions, draft.gather(1, order), base,
                                    drafted_w, order, real, context.end_ids, window.end_floor, generator)
        return draft.scatter(1, order, tokens), torch.zeros_like(chosen).scatter(1, order, keep)

    def _step_inputs(self, out: DenoiserOutput, prompt_length: int, selected: torch.Tensor):
        """The selected answer offsets of each row left to right [B, k] (columns j >= a row's count are
        padding), which columns are real, and the head's inputs there: hidden states, sequence positions and
        the backbone's log-probabilities."""
        count = selected.sum(dim=1)
        k = int(count.max())
        length = selected.shape[1]
        offsets = torch.arange(length, device=selected.device)
        order = torch.where(selected, offsets, length + offsets).argsort(dim=1)[:, :k]
        real = torch.arange(k, device=selected.device) < count.unsqueeze(1)
        columns = out.columns(order + prompt_length)  # a cached step's outputs cover only a span
        return order, real, take_positions(out.hidden, columns), order + prompt_length, take_positions(out.log_probs, columns)

    def _draw_in_order(self, context: DecodeContext, out: DenoiserOutput, prompt_length: int,
                       selected: torch.Tensor, draft: torch.Tensor, confidence: torch.Tensor | None, window: Window):
        """Exact mode's draw of the selected positions, left to right through the head, with the Gumbel noise
        that drew each marginal draft. Returns the drafts with those positions redrawn and, when a marginal
        ``confidence`` [B, A] is given, that confidence with the selected positions' replaced by the head's
        conditional probability of their drawn token (the first position's stays its marginal one)."""
        order, real, hidden, positions, base = self._step_inputs(out, prompt_length, selected)
        tokens = draft.gather(1, order)
        noise = window.take(window.gumbel, order)
        conditionals = step_conditionals(context.dependency_head, hidden, positions, base)
        conditional = []
        for j in range(1, order.shape[1]):
            weights, rank_w = self.sampling_weights(conditionals.next(tokens[:, :j]), order[:, j], context.end_ids,
                                                    window.end_floor)
            tokens[:, j] = (weights + noise[:, j]).argmax(dim=-1)
            if confidence is not None:
                conditional.append(rank_w.gather(-1, tokens[:, j, None]).squeeze(-1).exp())
        filled = draft.scatter(1, order, tokens)
        if confidence is None or not conditional:
            return filled, confidence
        # padding columns (j >= a row's count) must not overwrite: they point at unselected offsets
        current = confidence.gather(1, order[:, 1:])
        redrawn = torch.where(real[:, 1:], torch.stack(conditional, dim=1).to(confidence.dtype), current)
        return filled, confidence.scatter(1, order[:, 1:], redrawn)

    def _verify(self, head, hidden, positions, drafts, base, p_weights, order, real, eos_id, end_floor, generator):
        """Speculative sampling of the drafts against the head; returns (tokens, which to commit)."""
        q_weights, _ = self.sampling_weights(head(hidden, positions, drafts, base), order, eos_id, end_floor)
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

