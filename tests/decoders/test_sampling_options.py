"""Sampling options shared by every decoder: top-p, the [EOS] ban before min_length, greedy."""

import pytest
import torch

from dlm_lightning.decoders.ancestral import AncestralDecoder
from dlm_lightning.decoders.base import DecodeContext, top_p_filter
from dlm_lightning.decoders.joint import JointDecoder
from dlm_lightning.decoders.marginal import MarginalDecoder
from dlm_lightning.heads.dependency import DependencyHead
from dlm_lightning.models.denoiser import Denoiser
from dlm_lightning.models.transformer import Transformer
from dlm_lightning.schedules.uniform import UniformSchedule

VOCAB, MASK, EOS, PROMPT, ANSWER = 10, 1, 3, 3, 16


def test_top_p_keeps_the_smallest_set_reaching_p():
    log_p = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64).log()
    kept = top_p_filter(log_p, 0.75).exp()  # 0.5 + 0.3 reaches 0.75
    assert torch.allclose(kept, torch.tensor([0.625, 0.375, 0.0, 0.0], dtype=torch.float64))
    assert torch.allclose(top_p_filter(log_p, 0.85).exp(), torch.tensor([0.5, 0.3, 0.15, 0], dtype=torch.float64) / 0.95)
    assert torch.equal(top_p_filter(log_p, 0.01).exp(), torch.tensor([1.0, 0, 0, 0], dtype=torch.float64))
    assert top_p_filter(log_p, 1.0) is log_p


def test_sampling_weights_apply_temperature_after_the_eos_ban():
    decoder = MarginalDecoder(temperature=0.5, min_length=2)
    log_p = torch.tensor([[0.1, 0.2, 0.3, 0.4]] * 3, dtype=torch.float64).log()  # EOS = 3 is the likeliest
    sample, rank = decoder.sampling_weights(log_p, torch.tensor([0, 1, 2]), eos_id=3)
    assert torch.allclose(rank[0].exp(), torch.tensor([1 / 6, 2 / 6, 3 / 6, 0], dtype=torch.float64))
    assert torch.allclose(rank[2].exp(), log_p[2].exp())  # position 2 = min_length: EOS allowed
    squared = torch.tensor([1.0, 4.0, 9.0, 0.0], dtype=torch.float64)
    assert torch.allclose(sample[0].exp(), squared / squared.sum())
    greedy, _ = MarginalDecoder(temperature=0).sampling_weights(log_p, torch.tensor([0, 1, 2]), eos_id=3)
    assert torch.equal(greedy.exp()[:, 3], torch.ones(3, dtype=torch.float64))


def eos_loving_context() -> DecodeContext:
    torch.manual_seed(0)
    backbone = Transformer(VOCAB, PROMPT + ANSWER, d_model=16, n_layers=1, n_heads=2, mlp_ratio=2)
    with torch.no_grad():
        backbone.head.bias[EOS] = 30.0  # the model wants [EOS] everywhere
    head = DependencyHead(16, VOCAB, PROMPT + ANSWER, n_heads=2)
    return DecodeContext(Denoiser(backbone, MASK, needs_time=False).eval(), UniformSchedule(), MASK, EOS,
                         dependency_head=head.eval())


@pytest.mark.parametrize("decoder", [
    AncestralDecoder(tokens_per_step=2, min_length=5),
    MarginalDecoder(tokens_per_step=4, min_length=5),
    JointDecoder(tokens_per_step=4, min_length=5),
    JointDecoder(tokens_per_step=4, min_length=5, mode="speculative"),
], ids=["ancestral", "marginal", "joint", "speculative"])
def test_no_eos_before_min_length(decoder):
    prompts = torch.randint(4, VOCAB, (8, PROMPT), generator=torch.Generator().manual_seed(0))
    answer = decoder.decode(eos_loving_context(), prompts, ANSWER, torch.Generator().manual_seed(1)).tokens[:, PROMPT:]
    assert (answer[:, :5] != EOS).all()
    assert (answer[:, 5:] == EOS).all()  # where it is allowed, the model's preference wins


class TiedDenoiser(torch.nn.Module):
    """Every masked position gives tokens 5, 6 and 7 exactly the same top log-probability."""

    def forward(self, z, t):
        from dlm_lightning.models.denoiser import DenoiserOutput, subs_log_probs

        logits = torch.full((*z.shape, VOCAB), -4.0)
        logits[..., 5:8] = 2.0
        return DenoiserOutput(subs_log_probs(logits, z, MASK), torch.zeros(*z.shape, 16))


@pytest.mark.parametrize("decoder", [
    AncestralDecoder(tokens_per_step=2, temperature=0),
    MarginalDecoder(tokens_per_step=4, temperature=0),
    MarginalDecoder(tokens_per_step=4, temperature=0, threshold=0.3),
    JointDecoder(tokens_per_step=4, temperature=0),
], ids=["ancestral", "marginal", "threshold", "joint"])
def test_greedy_breaks_exact_ties_by_lowest_index_whatever_the_seed(decoder):
    head = DependencyHead(16, VOCAB, PROMPT + ANSWER, n_heads=2).eval()
    context = DecodeContext(TiedDenoiser(), UniformSchedule(), MASK, EOS, dependency_head=head)
    prompts = torch.full((4, PROMPT), 4)
    answers = [decoder.decode(context, prompts, ANSWER, torch.Generator().manual_seed(seed)).tokens[:, PROMPT:]
               for seed in (0, 1, 2)]
    assert all(torch.equal(a, torch.full_like(a, 5)) for a in answers)
