"""Seeded tiny models and decoder settings shared by the cache tests and the recorded reference tokens."""

from __future__ import annotations

import torch
from torch import nn

from dlm_lightning.decoders.base import DecodeContext
from dlm_lightning.decoders.joint import JointDecoder
from dlm_lightning.decoders.marginal import MarginalDecoder
from dlm_lightning.heads.dependency import DependencyHead
from dlm_lightning.models.denoiser import Denoiser
from dlm_lightning.models.transformer import Transformer
from dlm_lightning.schedules.uniform import UniformSchedule

VOCAB, MASK, EOS, PROMPT, ANSWER, BLOCK = 12, 1, 3, 4, 16, 4

# name -> (decoder class, options); every block decoder the suite has
DECODERS = {
    "marginal": (MarginalDecoder, {"tokens_per_step": 2}),
    "random": (MarginalDecoder, {"tokens_per_step": 2, "remasking": "random"}),
    "threshold": (MarginalDecoder, {"tokens_per_step": 4, "threshold": 0.09}),
    "joint": (JointDecoder, {"tokens_per_step": 2}),
    "speculative": (JointDecoder, {"tokens_per_step": 4, "mode": "speculative"}),
    "joint_rank": (JointDecoder, {"tokens_per_step": 2, "rank": "joint"}),
}
RECORDED_DECODERS = ("marginal", "random", "threshold", "joint", "speculative")  # those that predate caching


def context(positions: str = "rotary", seed: int = 0, n_layers: int = 2) -> DecodeContext:
    torch.manual_seed(seed)
    backbone = Transformer(VOCAB, PROMPT + ANSWER, d_model=16, n_layers=n_layers, n_heads=2, mlp_ratio=2,
                           positions=positions, attention="math")
    head = DependencyHead(16, VOCAB, PROMPT + ANSWER, n_heads=2)
    nn.init.normal_(head.out.weight, std=1.0)  # an untrained head is the identity: make it matter
    return DecodeContext(Denoiser(backbone, MASK, needs_time=False).eval(), UniformSchedule(), MASK, EOS,
                         dependency_head=head.eval())


def prompts(batch: int = 3) -> torch.Tensor:
    return torch.randint(4, VOCAB, (batch, PROMPT), generator=torch.Generator().manual_seed(3))


def decode(name: str, positions: str, **extra):
    cls, options = DECODERS[name]
    decoder = cls(block_length=BLOCK, **options, **extra)
    return decoder.decode(context(positions), prompts(), ANSWER, torch.Generator().manual_seed(5))
