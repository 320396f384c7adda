"""An enumerable data distribution, its exact denoiser and a Monte-Carlo NELBO, for the schedule tests.

Sequences of length 3 over the symbols {0, 1, 2} (id 3 is [MASK]) with strong dependencies between
positions. The exact denoiser returns the true posterior marginals q(x_i | z_t, t) under the schedule's
own forward process (time-conditioned where the masking rate depends on the token), so the NELBO it
gets must equal the exact negative log-likelihood.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from dlm_lightning.data.info import DataInfo
from dlm_lightning.models.denoiser import DenoiserOutput
from dlm_lightning.masked_diffusion import answer_distance, bound_terms, draw_nelbo
from dlm_lightning.schedules.uniform import UniformSchedule

SYMBOLS, LENGTH, MASK = 3, 3, 3
VOCAB = SYMBOLS + 1
SEQUENCES = torch.tensor(list(itertools.product(range(SYMBOLS), repeat=LENGTH)))  # [27, 3]


def toy_probs() -> torch.Tensor:
    """p(x) over SEQUENCES, float64: x2 mostly copies x1, x3 mostly equals (x1 + x2) mod 3."""
    p = torch.empty(len(SEQUENCES), dtype=torch.float64)
    first = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    for n, (a, b, c) in enumerate(SEQUENCES.tolist()):
        p_b = 0.7 if b == a else 0.15
        p_c = 0.8 if c == (a + b) % 3 else 0.1
        p[n] = first[a] * p_b * p_c
    return p / p.sum()


def toy_info(prompt_length: int = 0, counts=(500.0, 150.0, 40.0)) -> DataInfo:
    return DataInfo(vocab_size=VOCAB, mask_id=MASK, pad_id=MASK, eos_id=0, prompt_length=prompt_length,
                    seq_len=LENGTH, special_ids=(MASK,), token_counts=torch.tensor([*counts, 0.0]),
                    tokenizer=None)


def exact_nll(p: torch.Tensor, prompt_length: int = 0) -> float:
    """E_x[-log p(answer | prompt)] in nats."""
    log_p = p.log()
    if prompt_length == 0:
        return float(-(p * log_p).sum())
    prompt_ids = (SEQUENCES[:, :prompt_length] * SYMBOLS ** torch.arange(prompt_length)).sum(1)
    prompt_mass = torch.zeros(SYMBOLS ** prompt_length, dtype=torch.float64).index_add_(0, prompt_ids, p)
    return float(-(p * (log_p - prompt_mass[prompt_ids].log())).sum())


class ExactDenoiser(nn.Module):
    """Posterior marginals of x given z_t under ``schedule``'s forward process (prompt never masked).

    ``blend`` mixes in a uniform distribution over the symbols: a deliberately wrong denoiser.
    """

    def __init__(self, schedule, p: torch.Tensor, prompt_length: int = 0, blend: float = 0.0):
        super().__init__()
        self.schedule, self.p, self.prompt_length, self.blend = schedule, p, prompt_length, blend
        self.distance = answer_distance(LENGTH, prompt_length)

    @torch.no_grad()
    def forward(self, z: torch.Tensor, t: torch.Tensor) -> DenoiserOutput:
        batch, positions = z.shape[0], torch.arange(LENGTH)
        # P(mask) of every symbol at every position, then looked up for every candidate sequence
        symbols = torch.arange(SYMBOLS)[:, None].expand(SYMBOLS, LENGTH).repeat(batch, 1)
        m_symbol = self.schedule.mask_prob(t.double().repeat_interleave(SYMBOLS)[:, None], symbols,
                                           self.distance).double().view(batch, SYMBOLS, LENGTH)
        log_keep = torch.where(positions < self.prompt_length, 0.0, torch.log1p(-m_symbol))
        log_m, log_keep = m_symbol.log()[:, SEQUENCES, positions], log_keep[:, SEQUENCES, positions]  # [B, 27, L]
        masked, z = (z == MASK)[:, None, :], z[:, None, :]
        log_factor = torch.where(masked, log_m, torch.where(z == SEQUENCES, log_keep, -math.inf))
        posterior = (self.p.log() + log_factor.sum(2)).softmax(dim=1)  # [B, 27]
        z = z[:, 0]
        one_hot = torch.nn.functional.one_hot(SEQUENCES, VOCAB).double()  # [27, 3, V]
        probs = torch.einsum("bn,nlv->blv", posterior, one_hot)
        if self.blend:
            uniform = torch.zeros(VOCAB, dtype=torch.float64)
            uniform[:SYMBOLS] = 1.0 / SYMBOLS
            probs = torch.where((z == MASK).unsqueeze(-1), (1 - self.blend) * probs + self.blend * uniform, probs)
        return DenoiserOutput(probs.log().float(), torch.zeros(batch, LENGTH, 1))


def time_blind_denoiser(p: torch.Tensor, prompt_length: int = 0) -> ExactDenoiser:
    """The posterior that ignores what being masked says about a token (uniform masking)."""
    return ExactDenoiser(UniformSchedule(), p, prompt_length)


def monte_carlo_nelbo(schedule, denoisers: list, p: torch.Tensor, per_sequence: int, seed: int = 0,
                      prompt_length: int = 0, u_min: float = 1e-3, log_prior: torch.Tensor | None = None):
    """The bound of ``nelbo.bound_terms`` for every sequence, ``per_sequence`` draws each, with the same
    noise for every denoiser. Returns per denoiser the values [27, per_sequence] (float64)."""
    x0 = SEQUENCES.repeat_interleave(per_sequence, 0)
    g = torch.Generator().manual_seed(seed)
    u = u_min + (1 - u_min) * torch.rand(len(x0), generator=g)
    uniforms = torch.rand(x0.shape, generator=g)
    distance = answer_distance(LENGTH, prompt_length)
    if log_prior is None:
        log_prior = torch.full((VOCAB,), -math.log(SYMBOLS))
    values = []
    for denoiser in denoisers:
        draw = draw_nelbo(denoiser, schedule, x0, u, uniforms, distance, prompt_length, MASK)
        terms = bound_terms(schedule, draw, x0, distance, prompt_length, log_prior, u_min)
        values.append(terms.sum(dim=1).double().view(len(SEQUENCES), per_sequence))
    return values


def expectation(values: torch.Tensor, p: torch.Tensor) -> tuple[float, float]:
    """E_x under p of the per-sequence mean, and its standard error (sequences enumerated)."""
    n = values.shape[1]
    mean = float((p * values.mean(1)).sum())
    se = float((p ** 2 * values.var(1) / n).sum().sqrt())
    return mean, se
