"""The distance-adaptive schedule (and the info schedule) in the reverse process: the reverse-step
probabilities, and that ancestral sampling reveals what each schedule keeps visible longest first."""

from __future__ import annotations

import pytest
import torch

from dlm_lightning.data.info import DataInfo
from dlm_lightning.decoders.ancestral import AncestralDecoder
from dlm_lightning.decoders.base import DecodeContext
from dlm_lightning.errors import ConfigError
from dlm_lightning.models.denoiser import DenoiserOutput, subs_log_probs
from dlm_lightning.schedules.adaptive import AdaptiveSchedule
from dlm_lightning.schedules.info import InfoSchedule
from dlm_lightning.schedules.uniform import UniformSchedule

VOCAB, MASK, PROMPT, ANSWER = 6, 5, 2, 8


def _info(counts=(1.0,) * 5) -> DataInfo:
    return DataInfo(vocab_size=VOCAB, mask_id=MASK, pad_id=0, eos_id=0, prompt_length=PROMPT,
                    seq_len=PROMPT + ANSWER, special_ids=(MASK,), token_counts=torch.tensor([*counts, 0.0]),
                    tokenizer=None)


class FixedDenoiser(torch.nn.Module):
    """Predicts the same logits at every masked position (SUBS: visible positions copy)."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits  # [L, V]

    def forward(self, z, t):
        logits = self.logits.expand(z.shape[0], -1, -1).clone()
        return DenoiserOutput(subs_log_probs(logits, z, MASK), torch.zeros(*z.shape, 1))


def _mean_commit_step(schedule, logits: torch.Tensor, rows: int = 400) -> torch.Tensor:
    context = DecodeContext(FixedDenoiser(logits), schedule, MASK, eos_id=0)
    prompts = torch.ones(rows, PROMPT, dtype=torch.long)
    out = AncestralDecoder(tokens_per_step=1).decode(context, prompts, ANSWER, torch.Generator().manual_seed(0))
    return out.commit_step.double().mean(0)


def test_reverse_step_probability():
    schedule = AdaptiveSchedule(w_near=2.0, w_far=0.5)
    schedule.setup(_info())
    w = schedule.exponents.double()
    t = torch.tensor([[0.9]], dtype=torch.float64)
    s = torch.tensor([[0.4]], dtype=torch.float64)
    probs = torch.full((1, ANSWER, VOCAB), 1.0 / VOCAB, dtype=torch.float64)
    move = schedule.unmask_prob(t, s, torch.arange(ANSWER), probs)
    assert torch.allclose(move.sum(-1)[0], (0.9 ** w - 0.4 ** w) / 0.9 ** w)
    assert torch.allclose(schedule.unmask_prob(t, torch.zeros_like(s), torch.arange(ANSWER), probs), probs)


def test_ancestral_sampling_reveals_near_positions_first():
    logits = torch.zeros(PROMPT + ANSWER, VOCAB)
    adaptive = AdaptiveSchedule(w_near=4.0, w_far=0.25)
    adaptive.setup(_info())
    order = _mean_commit_step(adaptive, logits)
    assert (order.diff() > 0).all()  # each position is revealed later, on average, than the one before
    uniform_order = _mean_commit_step(UniformSchedule(), logits)
    assert (uniform_order - (ANSWER - 1) / 2).abs().max() < 0.5  # a uniformly random order


def test_ancestral_sampling_reveals_rare_tokens_first_with_positive_beta():
    info = _info(counts=(1000.0, 500.0, 5.0, 1.0, 1.0))
    schedule = InfoSchedule(beta=1.0)
    schedule.setup(info)
    w = schedule.exponents()
    assert w[3] > w[0]
    # a denoiser that is sure of the answer: a frequent token (0) at even positions, a rare one (3) at odd
    target = torch.tensor([0, 3] * (ANSWER // 2))
    logits = torch.full((PROMPT + ANSWER, VOCAB), -30.0)
    logits[PROMPT + torch.arange(ANSWER), target] = 0.0
    order = _mean_commit_step(schedule, logits)
    assert order[1::2].max() < order[0::2].min()


@pytest.mark.parametrize("kwargs, key", [({"w_near": 0.0}, "w_near"), ({"w_far": -1.0}, "w_far"),
                                         ({"profile": "cosine"}, "profile")])
def test_bad_settings_name_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=f"^{key}="):
        AdaptiveSchedule(**kwargs)
