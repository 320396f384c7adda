"""The probe of partially decoded states and the mask-count sensitivity."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "decoders"))
from test_block_schedule import EOS, MASK, PROMPT, VOCAB, prompts, random_context  # noqa: E402

from dlm_lightning.decoders.marginal import MarginalDecoder  # noqa: E402
from dlm_lightning.errors import ConfigError  # noqa: E402
from dlm_lightning.probe.partial import (bin_means, capture_state, mask_count_sensitivity,  # noqa: E402
                                         nearest_visible_distance, probe_partial_states)


def test_nearest_visible_distance_exact():
    masked = torch.tensor([[False, True, True, True, False, True]])
    assert nearest_visible_distance(masked).tolist() == [[0, 1, 2, 1, 0, 1]]
    assert nearest_visible_distance(torch.tensor([[False, True, True]])).tolist() == [[0, 1, 2]]


def test_capture_reads_the_state_after_that_many_calls():
    context, p = random_context(12), prompts(3)
    decoder = MarginalDecoder(block_length=12)  # one token per call
    for calls in (0, 5):
        z, log_probs = capture_state(decoder, context, p, 12, calls, torch.Generator().manual_seed(0))
        assert ((z[:, PROMPT:] == MASK).sum(dim=1) == 12 - calls).all()
        assert torch.equal(z[:, :PROMPT], p) and log_probs.shape == (3, PROMPT + 12, VOCAB)
    # the same seed: the state after 5 calls is the first 5 commits of the full decode
    full = decoder.decode(context, p, 12, torch.Generator().manual_seed(0))
    early = full.commit_step < 5
    assert torch.equal(z[:, PROMPT:][early], full.tokens[:, PROMPT:][early])
    assert capture_state(decoder, context, p, 12, 12, None) is None  # 12 calls finish the answer


def test_bin_means_exact():
    stats = {"near": [1, 1, 2, 7], "p_end": [0.1, 0.3, 0.5, 0.9], "entropy": [1, 1, 1, 1], "kl_unigram": [0, 0, 0, 2]}
    out = bin_means(stats, "near", ((1, 1), (2, 4), (5, 8), (9, 16)))
    assert out["near/d01-01/p_end"] == pytest.approx(0.2) and out["near/d01-01/count"] == 2
    assert out["near/d05-08/kl_unigram"] == pytest.approx(2.0) and "near/d09-16/count" not in out


def test_probe_partial_states_bins_by_both_distances():
    context = random_context(12)
    log_unigram = torch.full((VOCAB,), -torch.log(torch.tensor(float(VOCAB - 1))))
    log_unigram[MASK] = -1e9
    results = probe_partial_states(MarginalDecoder(block_length=12), context, prompts(4), 12, [0, 6, 40],
                                   log_unigram, (EOS,), prompt_bins=3)
    assert sorted(results) == [0, 6]  # 40 calls never happen
    assert results[0]["masked"] == 48 and results[6]["masked"] == 24
    # all masked: the nearest visible token is the prompt end, so both distances agree (near = prompt + 1)
    assert results[0]["near/d01-01/count"] == 4 and results[0]["prompt/d00-03/count"] == 16
    assert 0.0 <= results[6]["near/d01-01/p_end"] <= 1.0
    with pytest.raises(ConfigError, match="calls"):
        probe_partial_states(MarginalDecoder(block_length=12), context, prompts(1), 12, [-1], log_unigram, (EOS,))


class FakeProbeModel:
    eos_id = 0

    def encode(self, text):
        return [1] * len(text.split())

    def mask_log_probs(self, prompts, n_masks):
        # P(EOS) grows with the position's share of the canvas: position j of n has P(EOS) = (j + 1) / (n + 1)
        p_eos = torch.arange(1, n_masks + 1, dtype=torch.float64) / (n_masks + 1)
        probs = torch.stack([p_eos, 1 - p_eos], dim=-1).expand(len(prompts), n_masks, 2)
        return probs.log()


def test_mask_count_sensitivity_per_count():
    out = mask_count_sensitivity(FakeProbeModel(), ["a b", "c"], [1, 3], unigram=torch.tensor([0.5, 0.5]))
    assert out[1]["p_eos"] == pytest.approx([0.5]) and out[3]["p_eos"] == pytest.approx([0.25, 0.5, 0.75])
    assert out[1]["kl_unigram"] == pytest.approx([0.0])
