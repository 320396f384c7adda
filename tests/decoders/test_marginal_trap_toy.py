"""The marginal trap on 50% "i like tennis" / 50% "he likes tennis", and its fix by the dependency head.

The denoiser is constructed: it returns the exact posterior marginals given the visible tokens, so
when both words are masked it says {i, he} x {like, likes} with probability 1/2 each. Committing the
whole answer in one step from these marginals gives an incoherent pair with probability exactly 1/2.
The real DependencyHead is trained (with its own loss) on this denoiser's outputs; the joint decoder
must then be incoherent only as often as the head's own conditionals allow, which must be < 1%.

Tolerances: with n samples, a binomial rate r has standard deviation sqrt(r (1 - r) / n); we accept
4 standard deviations (two-sided false-alarm probability about 6e-5), i.e. +-0.045 around 1/2 at
n = 2000.
"""

import math

import torch
from torch import nn

from dlm_lightning.decoders.base import DecodeContext
from dlm_lightning.decoders.joint import JointDecoder
from dlm_lightning.decoders.marginal import MarginalDecoder
from dlm_lightning.heads.dependency import DependencyHead
from dlm_lightning.models.denoiser import DenoiserOutput
from dlm_lightning.schedules.uniform import UniformSchedule

PAD, MASK, BOS, EOS, I, HE, LIKE, LIKES, TENNIS = range(9)
VOCAB = 9
DATA = torch.tensor([[BOS, I, LIKE, TENNIS], [BOS, HE, LIKES, TENNIS]])
N = 2000


class ExactToyDenoiser(nn.Module):
    """Exact posterior marginals of the two-sentence distribution given the visible tokens."""

    def __init__(self, width: int = 16):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.register_buffer("features", torch.randn(VOCAB, width, generator=generator))

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> DenoiserOutput:
        consistent = ((z.unsqueeze(1) == DATA) | (z.unsqueeze(1) == MASK)).all(dim=-1).double()  # [B, 2]
        weights = consistent / consistent.sum(dim=1, keepdim=True)
        one_hot = nn.functional.one_hot(DATA, VOCAB).double()  # [2, L, V]
        probs = torch.einsum("bs,slv->blv", weights, one_hot)
        return DenoiserOutput(probs.log().float(), self.features[z])


def train_head(denoiser: ExactToyDenoiser, steps: int = 60) -> DependencyHead:
    torch.manual_seed(0)
    head = DependencyHead(d_model=16, vocab_size=VOCAB, max_seq_len=4, n_heads=2, subset_size=3, window=3)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(steps):
        x0 = DATA[torch.randint(0, 2, (128,))]
        masked = torch.rand(x0.shape) < torch.rand(128, 1)
        masked[:, 0] = False
        out = denoiser(torch.where(masked, MASK, x0), torch.ones(128))
        loss = head.loss(x0, masked, out.hidden, out.log_probs)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return head.eval()


def incoherent_rate(tokens: torch.Tensor) -> float:
    first, second = tokens[:, 1], tokens[:, 2]
    return (((first == I) & (second == LIKES)) | ((first == HE) & (second == LIKE))).double().mean().item()


def test_marginal_decoder_falls_into_the_trap_and_the_joint_decoder_does_not():
    denoiser = ExactToyDenoiser()
    head = train_head(denoiser)
    context = DecodeContext(denoiser, UniformSchedule(), MASK, EOS, dependency_head=head)
    prompts = torch.full((N, 1), BOS)
    one_step = dict(tokens_per_step=3, block_length=3)  # the whole answer in one denoiser call

    marginal = MarginalDecoder(**one_step).decode(context, prompts, 3, torch.Generator().manual_seed(1))
    assert marginal.nfe == 1
    assert abs(incoherent_rate(marginal.tokens) - 0.5) <= 4 * math.sqrt(0.25 / N)

    # the head's own probability of an incoherent pair: 1/2 q(likes | i) + 1/2 q(like | he)
    z = torch.tensor([[BOS, MASK, MASK, MASK]] * 2)
    out = denoiser(z, torch.ones(2))
    q = head(out.hidden[:, 1:3], torch.tensor([[1, 2]] * 2), torch.tensor([[I, 0], [HE, 0]]),
             out.log_probs[:, 1:3])[:, 1].exp()
    expected = 0.5 * q[0, LIKES].item() + 0.5 * q[1, LIKE].item()
    assert expected < 0.01

    for mode in ("exact", "speculative"):
        joint = JointDecoder(**one_step, mode=mode).decode(context, prompts, 3, torch.Generator().manual_seed(1))
        bound = 4 * math.sqrt(max(expected, 1 / N) / N)  # at least one sample's worth of slack
        assert incoherent_rate(joint.tokens) <= expected + bound
        assert (joint.tokens[:, 3] == TENNIS).all()
