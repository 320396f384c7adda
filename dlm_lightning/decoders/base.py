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


class Decoder(ABC):
    """Decodes ``answer_length`` masked positions after each prompt, ``tokens_per_step`` at a time."""

    def __init__(self, tokens_per_step: int = 1, temperature: float = 1.0):
        require(isinstance(tokens_per_step, int) and tokens_per_step >= 1, "tokens_per_step",
                tokens_per_step, "must be an integer >= 1")
        require(temperature >= 0, "temperature", temperature, "must be >= 0 (0 = greedy)")
        self.tokens_per_step, self.temperature = tokens_per_step, temperature

    def steps_for(self, answer_length: int) -> int:
        return math.ceil(answer_length / self.tokens_per_step)

    @torch.no_grad()
    def decode(self, context: DecodeContext, prompts: torch.Tensor, answer_length: int,
               generator: torch.Generator | None = None) -> DecodeOutput:
        start = time.perf_counter()
        out = self._decode(context, prompts, answer_length, generator)
        out.seconds = time.perf_counter() - start
        return out

    @abstractmethod
    def _decode(self, context: DecodeContext, prompts: torch.Tensor, answer_length: int,
                generator: torch.Generator | None) -> DecodeOutput:
        ...


def gumbel_argmax(log_weights: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Samples argmax(log w + Gumbel) in float64 (float32 Gumbel noise biases low-probability tokens)."""
    log_weights = log_weights.double()
    u = torch.rand(log_weights.shape, generator=generator, device=log_weights.device, dtype=torch.float64)
    gumbel = -torch.log(-torch.log(u.clamp_min(1e-300)))
    return (log_weights + gumbel).argmax(dim=-1)


def gumbel_topk(log_weights: torch.Tensor, k: int, generator: torch.Generator | None) -> torch.Tensor:
    """k indices per row drawn without replacement in proportion to exp(log_weights) (Gumbel top-k)."""
    log_weights = log_weights.double()
    u = torch.rand(log_weights.shape, generator=generator, device=log_weights.device, dtype=torch.float64)
    return (log_weights - torch.log(-torch.log(u.clamp_min(1e-300)))).topk(k, dim=-1).indices


def tempered(log_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Log-probabilities at a temperature; 0 puts all mass on the argmax (greedy)."""
    if temperature == 0:
        return torch.where(log_probs == log_probs.max(dim=-1, keepdim=True).values, 0.0, float("-inf"))
    return (log_probs.double() / temperature).log_softmax(dim=-1)
