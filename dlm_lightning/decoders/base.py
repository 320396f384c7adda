"""The decoder interface: prompts in, answers out, with a trace of what was committed when."""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from dlm_lightning.errors import require


@dataclass
class DecodeOutput:
    tokens: torch.Tensor  # [B, P + A]: prompt followed by the decoded answer
    nfe: int  # denoiser (backbone) calls
    commit_step: torch.Tensor  # [B, A]: the step at which each answer position was committed
    seconds: float = 0.0


@dataclass
class DecodeContext:
    """What a decoder may use: the SUBS denoiser, the schedule, and an optional dependency head."""

    denoiser: torch.nn.Module
    schedule: torch.nn.Module
    mask_id: int
    eos_id: int
    dependency_head: torch.nn.Module | None = None
    pad_ids: tuple[int, ...] = ()  # rainbow pads: each ends an answer like [EOS]

    @property
    def end_ids(self) -> tuple[int, ...]:
        return (self.eos_id, *self.pad_ids)


class Decoder(ABC):
    """Decodes ``answer_length`` masked positions after each prompt, ``tokens_per_step`` at a time.

    Sampling options shared by every decoder: ``temperature`` (0 = greedy), ``top_p`` (nucleus) and
    ``min_length`` ([EOS] is forbidden at answer positions before it).
    """

    #: the decoder samples through DecodeContext.dependency_head (a model trained with head=dependency)
    needs_head: bool = False

    def __init__(self, tokens_per_step: int = 1, temperature: float = 1.0, top_p: float = 1.0,
                 min_length: int = 0):
        require(isinstance(tokens_per_step, int) and tokens_per_step >= 1, "tokens_per_step",
                tokens_per_step, "must be an integer >= 1")
        require(temperature >= 0, "temperature", temperature, "must be >= 0 (0 = greedy)")
        require(0 < top_p <= 1, "top_p", top_p, "must be in (0, 1] (1 = no nucleus filtering)")
        require(isinstance(min_length, int) and min_length >= 0, "min_length", min_length,
                "must be an integer >= 0 (answer positions before it may not be [EOS])")
        self.tokens_per_step, self.temperature = tokens_per_step, temperature
        self.top_p, self.min_length = top_p, min_length

    def steps_for(self, answer_length: int) -> int:
        return math.ceil(answer_length / self.tokens_per_step)

    def check(self, answer_length: int) -> None:
        """Raises ConfigError for settings this answer length cannot use (at build time and in decode)."""
        require(self.tokens_per_step <= answer_length, "tokens_per_step", self.tokens_per_step,
                f"must be <= the answer length {answer_length}")
        require(self.min_length <= answer_length, "min_length", self.min_length,
                f"must be <= the answer length {answer_length}")

    def check_head(self, head: torch.nn.Module | None) -> None:
        require(head is not None or not self.needs_head, "head", None,
                f"{type(self).__name__} samples through a dependency head and this model has none: "
                f"train with head=dependency (a checkpoint trained without a head cannot use it)")

    def check_denoiser(self, denoiser: torch.nn.Module) -> None:
        """Raises ConfigError when this decoder's settings need something the denoiser lacks (e.g. a cache)."""

    def sampling_weights(self, log_probs: torch.Tensor, offsets: torch.Tensor, eos_id: int | tuple[int, ...],
                         end_floor: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(log-weights to sample from, log-probabilities to rank by), both float64 [..., V].

        ``offsets`` holds the answer position of each row of ``log_probs`` ([B, ...], broadcastable).
        The ranking distribution is the model's after the [EOS] ban, before temperature and top-p
        (as LLaDA ranks by the untempered probability of the sampled token). ``eos_id`` may be a tuple of
        end tokens ([EOS] and pad variants): min_length bans them all, and so does ``end_floor`` [B], a
        per-row min_length (the end position a decoder drew), when given.
        """
        log_probs = log_probs.double()
        floor = self.min_length
        if end_floor is not None:
            floor = end_floor.clamp_min(self.min_length).view(-1, *([1] * (offsets.dim() - 1)))
        if end_floor is not None or self.min_length > 0:
            early = (offsets < floor).unsqueeze(-1)
            ends = torch.tensor(eos_id, device=log_probs.device).reshape(-1)
            is_eos = torch.isin(torch.arange(log_probs.shape[-1], device=log_probs.device), ends)
            log_probs = log_probs.masked_fill(early & is_eos, float("-inf"))
        log_probs = log_probs.log_softmax(dim=-1)
        return top_p_filter(tempered(log_probs, self.temperature), self.top_p), log_probs

    @torch.no_grad()
    def decode(self, context: DecodeContext, prompts: torch.Tensor, answer_length: int,
               generator: torch.Generator | None = None) -> DecodeOutput:
        self.check(answer_length)
        self.check_head(context.dependency_head)
        self.check_denoiser(context.denoiser)
        start = time.perf_counter()
        out = self._decode(context, prompts, answer_length, generator)
        out.seconds = time.perf_counter() - start
        return out

    @abstractmethod
    def _decode(self, context: DecodeContext, prompts: torch.Tensor, answer_length: int,
                generator: torch.Generator | None) -> DecodeOutput:
        ...


def masked_canvas(prompts: torch.Tensor, answer_length: int, mask_id: int):
    """(z, answer, commit_step): prompts followed by ``answer_length`` masks, the answer part as a view of z
    (writing it writes z), and a commit trace of -1 (not yet committed) per answer position."""
    batch, prompt_length = prompts.shape
    z = torch.cat([prompts, prompts.new_full((batch, answer_length), mask_id)], dim=1)
    commit_step = torch.full((batch, answer_length), -1, dtype=torch.long, device=prompts.device)
    return z, z[:, prompt_length:], commit_step


def reverse_time_steps(batch: int, steps: int, device=None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The (t, s) pairs, each [B, 1] float64, of the uniform grid 1 = t_0 > ... > t_steps = 0 that samplers
    following the schedule's own reverse process step along."""
    grid = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64, device=device)
    return [(grid[i].expand(batch, 1), grid[i + 1].expand(batch, 1)) for i in range(steps)]


def gumbel_noise(shape, generator: torch.Generator | None, device=None) -> torch.Tensor:
    """Standard Gumbel noise in float64 (float32 noise biases low-probability tokens)."""
    u = torch.rand(shape, generator=generator, device=device, dtype=torch.float64)
    return -torch.log(-torch.log(u.clamp_min(1e-300)))


def gumbel_argmax(log_weights: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Samples argmax(log w + Gumbel) in float64."""
    return (log_weights.double() + gumbel_noise(log_weights.shape, generator, log_weights.device)).argmax(dim=-1)


def gumbel_topk(log_weights: torch.Tensor, k: int, generator: torch.Generator | None) -> torch.Tensor:
    """k indices per row drawn without replacement in proportion to exp(log_weights) (Gumbel top-k)."""
    log_weights = log_weights.double()
    u = torch.rand(log_weights.shape, generator=generator, device=log_weights.device, dtype=torch.float64)
    return (log_weights - torch.log(-torch.log(u.clamp_min(1e-300)))).topk(k, dim=-1).indices


def tempered(log_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Log-probabilities at a temperature; 0 puts all mass on the argmax (greedy), the lowest index
    among exact ties (as torch.argmax and LLaDA's reference), so no sampling noise can break them."""
    if temperature == 0:
        top = log_probs.argmax(dim=-1, keepdim=True)
        return torch.full_like(log_probs, float("-inf")).scatter(-1, top, 0.0)
    return (log_probs.double() / temperature).log_softmax(dim=-1)


def top_p_filter(log_weights: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keeps the smallest set of most likely tokens whose mass reaches ``top_p`` (always the top one)."""
    if top_p >= 1:
        return log_weights
    probs = log_weights.softmax(dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    keep_sorted = sorted_probs.cumsum(dim=-1) - sorted_probs < top_p  # mass before this token < p
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return log_weights.masked_fill(~keep, float("-inf")).log_softmax(dim=-1)
