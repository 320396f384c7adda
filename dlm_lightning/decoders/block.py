"""Semi-autoregressive block decoding: which positions each step commits (LLaDA low-confidence / random
remasking, Fast-dLLM confidence threshold); subclasses choose how those positions' tokens are drawn.

The answer is split into blocks of ``block_length`` decoded left to right; nothing outside the current
block is committed (except the end token ``sample_length`` places, below), and committed tokens are
never changed. Each step makes one denoiser call,
samples a token at every position of the current block from its marginal (Gumbel-max in float64) and
commits some of that block's masked positions:

- fixed count (default): N = ceil(A / tokens_per_step) steps split evenly over the blocks; a block with
  M masks and S steps commits floor(M/S) tokens per step plus one more in the first M mod S steps;
- ``threshold``: the most confident position plus every other one whose confidence >= threshold,
  at most ``tokens_per_step`` per step; the number of steps then depends on the model.

Which positions: ``low_confidence`` takes those whose sampled token is most probable under the model
(untempered), ``random`` takes uniformly random ones. ``position_decay`` (lambda >= 0) ranks by
confidence * exp(-lambda * answer offset) instead (PC-Sampler's position-aware calibration, arXiv
2508.13021): far positions, whose confident [EOS] would end the answer early, are committed later.
``sample_length`` spends the first step on drawing each answer's end from the model's own length law
(``_commit_sampled_end``) and bans end tokens before it. Subclasses change how the chosen positions'
tokens are drawn (``_fill``; here, independent marginal draws), never which positions are chosen: that
keeps comparisons fair. The one exception is opt-in: ``JointDecoder(rank="joint")`` ranks by the head's joint
(``_rank``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from dlm_lightning.decoders.base import DecodeContext, DecodeOutput, Decoder, gumbel_noise, masked_canvas
from dlm_lightning.decoders.cache import BlockCache, check_cache_options, check_cache_support
from dlm_lightning.errors import require
from dlm_lightning.models.denoiser import DenoiserOutput

REMASKING = ("low_confidence", "random")


class BlockDecoder(Decoder):
    def __init__(self, tokens_per_step: int = 1, temperature: float = 1.0, top_p: float = 1.0,
                 min_length: int = 0, block_length: int = 8, remasking: str = "low_confidence",
                 threshold: float | None = None, cache: str = "none", refresh_every: int | None = None,
                 position_decay: float = 0.0, sample_length: bool = False):
        super().__init__(tokens_per_step, temperature, top_p, min_length)
        self.sample_length = sample_length
        check_cache_options(cache, refresh_every)
        require(position_decay >= 0, "position_decay", position_decay, "must be >= 0 (0 = plain confidence)")
        self.cache, self.refresh_every, self.position_decay = cache, refresh_every, float(position_decay)
        require(isinstance(block_length, int) and block_length >= 1, "block_length", block_length,
                "must be an integer >= 1")
        require(remasking in REMASKING, "remasking", remasking, f"one of {', '.join(REMASKING)}")
        require(threshold is None or 0.0 <= threshold <= 1.0, "threshold", threshold,
                "must be null (fixed count per step) or in [0, 1]")
        require(threshold is None or remasking == "low_confidence", "remasking", remasking,
                "the confidence threshold needs remasking=low_confidence")
        self.block_length, self.remasking, self.threshold = block_length, remasking, threshold

    def check(self, answer_length: int) -> None:
        super().check(answer_length)
        length, k = self.block_length, self.tokens_per_step
        require(answer_length % length == 0, "block_length", length,
                f"must divide the answer length {answer_length}")
        require(k <= length, "tokens_per_step", k, f"must be <= block_length={length} (a step commits inside one block)")
        if self.threshold is None:
            blocks = answer_length // length
            allowed = [j for j in range(1, length + 1) if math.ceil(answer_length / j) % blocks == 0]
            require(self.steps_for(answer_length) % blocks == 0, "tokens_per_step", k,
                    f"gives ceil({answer_length}/{k}) = {self.steps_for(answer_length)} steps, which do not "
                    f"split evenly over {blocks} blocks of {length}; allowed here: {allowed}")

    def check_denoiser(self, denoiser) -> None:
        check_cache_support(self.cache, denoiser)

    def _decode(self, context: DecodeContext, prompts, answer_length, generator) -> DecodeOutput:
        batch, prompt_length = prompts.shape
        forward = BlockCache(context.denoiser, self.cache, self.refresh_every, self.block_length, prompt_length)
        device = prompts.device
        z, answer, commit_step = masked_canvas(prompts, answer_length, context.mask_id)
        offsets = torch.arange(answer_length, device=device)
        block = offsets // self.block_length
        steps_per_block = self.steps_for(answer_length) // (answer_length // self.block_length)
        # per row, since speculative decoding may move rows through blocks at different speeds
        step_in_block = torch.zeros(batch, dtype=torch.long, device=device)
        last_block = torch.full((batch,), -1, dtype=torch.long, device=device)
        nfe = 0
        end_floor = None  # per row, with sample_length: no end token before the drawn end position
        while True:
            masked = answer == context.mask_id
            if not masked.any():
                break
            current = block[masked.int().argmax(dim=1)]  # the block of each row's first masked position
            eligible = masked & (block == current.unsqueeze(1))
            step_in_block = torch.where(current == last_block, step_in_block, 0)
            last_block = current
            out = forward(z, masked.float().mean(dim=1), current)
            nfe += 1
            if self.sample_length and end_floor is None:
                # this step commits the end token only: its drafts were drawn without knowing the end
                end_floor = self._commit_sampled_end(context, out, prompt_length, answer, commit_step, generator)
                forward.invalidate()  # cached keys would not see the committed end token
                step_in_block += 1
                continue
            # only the current block can be committed: sampling there alone saves A / block_length of
            # the float64 [B, A, V] work, which dominates a step for real vocabularies
            window = current.unsqueeze(1) * self.block_length + torch.arange(self.block_length, device=device)
            log_probs = take_positions(out.log_probs, out.columns(window + prompt_length))
            sample_w, rank_w = self.sampling_weights(log_probs, window, context.end_ids, end_floor)
            gumbel = gumbel_noise(sample_w.shape, generator, device)
            window_draft = (sample_w + gumbel).argmax(dim=-1)
            window_confidence = rank_w.gather(-1, window_draft.unsqueeze(-1)).squeeze(-1).exp()
            # back to answer offsets; outside the window nothing is eligible, so the fill values are unused
            draft = torch.full_like(answer, context.mask_id).scatter(1, window, window_draft)
            confidence = torch.zeros(answer.shape, dtype=window_confidence.dtype, device=device).scatter(
                1, window, window_confidence)
            step_window = Window(window, sample_w, gumbel, end_floor)
            draft, confidence = self._rank(context, out, prompt_length, eligible, draft, confidence, step_window)
            count = self._count(eligible, confidence, step_in_block, steps_per_block)
            chosen = self._choose(eligible, confidence, count, generator)
            tokens, committed = self._fill(context, out, prompt_length, chosen, draft, step_window, generator)
            answer.copy_(torch.where(committed, tokens, answer))
            commit_step.masked_fill_(committed, nfe - 1)
            step_in_block += 1
        return DecodeOutput(z, nfe=nfe, commit_step=commit_step)

    def _commit_sampled_end(self, context: DecodeContext, out: DenoiserOutput, prompt_length: int,
                            answer: torch.Tensor, commit_step: torch.Tensor, generator) -> torch.Tensor:
        """Draws each row's answer length from the model's own length law and commits [EOS] there; returns
        the drawn end offsets [B] (A = no end).

        With every answer position masked, P(x_i is an end token) is P(length <= i) (after the first end
        token only end tokens follow), so the running maximum of that probability over i is a CDF, and
        the first i where it reaches a uniform draw u is a sample of the length. Confidence ranking would
        instead commit the far, surest [EOS] positions first and cut answers short (frequency collapse).
        """
        require(out.start is None, "cache", self.cache, "sample_length needs a full first forward")
        answer_log_probs = out.log_probs[:, prompt_length:].double()
        ends = torch.tensor(context.end_ids, device=answer.device)
        p_end = answer_log_probs.index_select(-1, ends).exp().sum(dim=-1).clamp(0.0, 1.0)
        p_end[:, : self.min_length] = 0.0
        cdf = p_end.cummax(dim=1).values
        u = torch.rand((answer.shape[0], 1), generator=generator, device=answer.device, dtype=torch.float64)
        end_at = (cdf < u).sum(dim=1)  # the first offset whose CDF reaches u; A when none does
        ends_inside = (end_at < answer.shape[1]).unsqueeze(1)
        at_end = torch.zeros_like(answer, dtype=torch.bool).scatter(1, end_at.clamp(max=answer.shape[1] - 1).unsqueeze(1),
                                                                    ends_inside)
        answer.masked_fill_(at_end, context.eos_id)
        commit_step.masked_fill_(at_end, 0)
        return end_at

    def _rank(self, context: DecodeContext, out: DenoiserOutput, prompt_length: int, eligible: torch.Tensor,
              draft: torch.Tensor, confidence: torch.Tensor, window: "Window") -> tuple[torch.Tensor, torch.Tensor]:
        """The drafts [B, A] and the confidence [B, A] that positions are counted and chosen by: here, the
        independent marginal drafts and their marginal probabilities."""
        return draft, confidence

    def _count(self, eligible, confidence, step_in_block, steps_per_block) -> torch.Tensor:
        """Positions to commit per row this step, [B]."""
        remaining = eligible.sum(dim=1)
        if self.threshold is not None:
            sure = (eligible & (confidence >= self.threshold)).sum(dim=1)
            return sure.clamp(1, self.tokens_per_step).minimum(remaining)
        # ceil(r / steps left) is LLaDA's floor(M/S) plus one in the first M mod S steps
        steps_left = (steps_per_block - step_in_block).clamp_min(1)
        return (remaining + steps_left - 1) // steps_left

    def _choose(self, eligible, confidence, count, generator) -> torch.Tensor:
        """The ``count`` eligible positions of each row with the highest score, as a mask [B, A]."""
        if self.remasking == "random":
            score = torch.rand(eligible.shape, generator=generator, device=eligible.device, dtype=torch.float64)
        else:
            offsets = torch.arange(eligible.shape[1], device=eligible.device, dtype=confidence.dtype)
            score = confidence * torch.exp(-self.position_decay * offsets) if self.position_decay else confidence
        score = torch.where(eligible, score, float("-inf"))
        order = score.argsort(dim=1, descending=True, stable=True)
        take = torch.arange(eligible.shape[1], device=eligible.device) < count.unsqueeze(1)
        return torch.zeros_like(eligible).scatter(1, order, take)

    def _fill(self, context: DecodeContext, out: DenoiserOutput, prompt_length: int, chosen: torch.Tensor,
              draft: torch.Tensor, window: "Window", generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens for the chosen positions and which of them to commit: here, independent marginal draws.

        ``draft`` [B, A] = argmax(sample_w + gumbel) at the window's positions (the current block).
        """
        return draft, chosen


@dataclass
class Window:
    """A step's sampling state on each row's current block: answer offsets [B, L], log-weights and the
    Gumbel noise that drew the drafts [B, L, V], and the per-row end ban sampling_weights applied."""

    offsets: torch.Tensor
    sample_w: torch.Tensor
    gumbel: torch.Tensor
    end_floor: torch.Tensor | None = None  # [B] per-row min_length (sample_length), for re-weighting

    def take(self, values: torch.Tensor, answer_offsets: torch.Tensor) -> torch.Tensor:
        """values [B, L, V] of this window at answer offsets [B, k] -> [B, k, V]. Offsets outside the
        window (a caller's padding columns) get some row of the window: their values must not be used."""
        inside = (answer_offsets - self.offsets[:, :1]).clamp(0, self.offsets.shape[1] - 1)
        return take_positions(values, inside)


def take_positions(values: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """values [B, A, D] at the positions order [B, k] -> [B, k, D]."""
    return values.gather(1, order.unsqueeze(-1).expand(-1, -1, values.shape[-1]))
