"""The autoregressive baseline: exact NLL by hand, causal attention, left-to-right sampling, config."""

from __future__ import annotations

import functools
import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent.parent / "schedules"))
from exact_diffusion import LENGTH, MASK, SEQUENCES, VOCAB, exact_nll, toy_info, toy_probs  # noqa: E402

from dlm_lightning.autoregressive.lm import answer_nll, sample_left_to_right  # noqa: E402
from dlm_lightning.autoregressive.module import AutoregressiveLM  # noqa: E402
from dlm_lightning.decoders.marginal import MarginalDecoder  # noqa: E402
from dlm_lightning.errors import ConfigError  # noqa: E402
from dlm_lightning.models.transformer import Transformer  # noqa: E402
from dlm_lightning.schedules.uniform import UniformSchedule  # noqa: E402


class ExactConditionals(nn.Module):
    """A causal 'backbone' whose output at position i is log p(x_i | x_<i) of the toy distribution,
    reading inputs = [start, x_0, ..., x_{T-2}] (only inputs[:, 1 : i + 1] at position i)."""

    time_conditioning, causal, d_model = False, True, 1

    def __init__(self):
        super().__init__()
        self.p = toy_probs()

    def forward(self, inputs, t=None):
        batch, length = inputs.shape
        logits = torch.zeros(batch, length, VOCAB, dtype=torch.float64)
        for i in range(length):
            prefix = inputs[:, 1: i + 1]  # [B, i]
            consistent = (SEQUENCES[None, :, :i] == prefix[:, None, :]).all(dim=2).double() * self.p  # [B, 27]
            one_hot = torch.nn.functional.one_hot(SEQUENCES[:, i], VOCAB).double()  # [27, V]
            logits[:, i] = (consistent @ one_hot).clamp_min(1e-30).log()
        return logits.float(), torch.zeros(batch, length, 1)


def ar_module(backbone=None, **kwargs):
    return AutoregressiveLM(backbone or ExactConditionals(), UniformSchedule(), MarginalDecoder(block_length=1),
                            toy_info(), optimizer=functools.partial(torch.optim.SGD, lr=0.1), **kwargs)


def test_exact_nll_of_one_sequence_by_hand_and_the_entropy_over_all():
    backbone = ExactConditionals()
    # x = (0, 0, 0): p(x0=0) = 0.5, p(x1=0 | 0) = 0.7, p(x2=0 | 0, 0) = 0.8
    nll = answer_nll(backbone, torch.tensor([[0, 0, 0]]), 0, MASK)
    assert nll[0].tolist() == pytest.approx([-math.log(0.5), -math.log(0.7), -math.log(0.8)], rel=1e-6)
    # with a one-token prompt only x1, x2 are scored: the same conditionals
    assert answer_nll(backbone, torch.tensor([[0, 0, 0]]), 1, MASK)[0].tolist() == pytest.approx(
        [-math.log(0.7), -math.log(0.8)], rel=1e-6)
    # E_x[-log p(x)] over the whole distribution is its entropy: the exact NLL, no bound
    per_sequence = answer_nll(backbone, SEQUENCES, 0, MASK).double().sum(dim=1)
    assert float((toy_probs() * per_sequence).sum()) == pytest.approx(exact_nll(toy_probs()), rel=1e-6)


def test_the_module_reports_the_exact_perplexity_under_the_bound_keys():
    module = ar_module()
    batch = {"input_ids": torch.tensor([[0, 0, 0], [1, 1, 2]]), "index": torch.tensor([0, 1])}
    module._eval_step(batch, 0, module.val_nelbo, module.val_samples, decode=False)
    # (1, 1, 2): p(x0=1) = 0.3, p(x1=1 | 1) = 0.7, p(x2=2 | 1, 1) = 0.8
    by_hand = -(math.log(0.5 * 0.7 * 0.8) + math.log(0.3 * 0.7 * 0.8)) / 6
    values = module.val_nelbo.compute()
    assert values["nelbo"].item() == pytest.approx(by_hand, rel=1e-6)
    assert values["ppl"].item() == pytest.approx(math.exp(by_hand), rel=1e-6)
    assert module.exact_likelihood is True


def test_causal_attention_hides_later_tokens_and_bidirectional_does_not():
    torch.manual_seed(0)
    tokens = torch.randint(0, 10, (1, 6))
    changed = tokens.clone()
    changed[0, 4] = (tokens[0, 4] + 1) % 10
    for causal in (True, False):
        model = Transformer(10, 6, d_model=16, n_layers=2, n_heads=2, causal=causal).eval()
        before, after = model(tokens)[0], model(changed)[0]
        assert torch.equal(before[:, :4], after[:, :4]) == causal
        assert not torch.allclose(before[:, 4:], after[:, 4:])


def test_greedy_left_to_right_sampling_follows_the_most_likely_chain():
    decoder = MarginalDecoder(block_length=1, temperature=0.0)
    out = sample_left_to_right(ExactConditionals(), torch.zeros(2, 0, dtype=torch.long), LENGTH, MASK, 0, decoder)
    assert out.tokens.tolist() == [[0, 0, 0]] * 2  # argmax: x0 = 0 (0.5), x1 = 0 (0.7), x2 = 0 + 0 (0.8)
    assert out.nfe == LENGTH and out.commit_step.tolist() == [[0, 1, 2]] * 2
    # sampled: each position follows its conditional (x1 copies x0 with probability 0.7)
    sampled = sample_left_to_right(ExactConditionals(), torch.zeros(4000, 0, dtype=torch.long), LENGTH, MASK, 0,
                                   MarginalDecoder(block_length=1), torch.Generator().manual_seed(0)).tokens
    copies = (sampled[:, 1] == sampled[:, 0]).double().mean().item()
    assert abs(copies - 0.7) < 4 * math.sqrt(0.21 / 4000)


def test_bad_settings_fail_in_one_line():
    with pytest.raises(ConfigError, match=r"^model.causal=False is invalid: must be true for objective=autoregressive"):
        ar_module(Transformer(VOCAB, LENGTH, d_model=8, n_layers=1, n_heads=2))
    with pytest.raises(ConfigError, match=r"^head='dependency' is invalid: the autoregressive objective"):
        ar_module(dependency_head=nn.Linear(1, 1))


def test_the_objective_config_composes_and_trains(compose, tiny_overrides, tmp_path):
    from dlm_lightning.run.experiment import new_run, run_experiment

    cfg = compose([*tiny_overrides, "objective=autoregressive", "data.train_size=64", "data.test_size=8",
                   "data.val_size=16", "module.eval_decode_batches=0", "callbacks.throughput=null"])
    assert cfg.model.causal is True and cfg.module._target_.endswith("AutoregressiveLM")
    assert compose(tiny_overrides).model.get("causal", False) is False  # diffusion stays bidirectional
    cfg = new_run(tmp_path / "run", cfg, {"objective": "autoregressive", "schedule": "uniform", "decoder": "marginal"})
    metrics = run_experiment(cfg, tmp_path / "run")
    assert metrics["objective"] == "autoregressive"
    assert metrics["sample/nfe"] == 40.0  # one call per answer token
    assert 1.0 < metrics["test/ppl"] < 1024
    assert metrics["test/nelbo"] == pytest.approx(math.log(metrics["test/ppl"]), rel=1e-5)
