"""Exact values of the probe's statistics and aggregates on hand-made distributions."""

import math

import pytest
import torch

from dlm_lightning.probe.aggregate import (average_ranks, per_position, quarter_slices, quarters, spearman,
                                           top1_shares, trends)
from dlm_lightning.probe.compute import ProbeResult
from dlm_lightning.probe.report import collapse_summary
from dlm_lightning.probe.stats import entropy, frequency_ranks, kl_divergence, position_stats, restrict

LN2 = math.log(2.0)


def log(values):
    return torch.tensor(values, dtype=torch.float64).log()


def test_entropy_of_uniform_and_one_hot():
    assert entropy(log([0.25] * 4)).item() == pytest.approx(math.log(4))
    assert entropy(log([1.0, 0.0, 0.0])).item() == 0.0  # 0 log 0 = 0, not nan


def test_kl_exact_and_zero_on_itself():
    p, q = log([0.5, 0.5, 0.0, 0.0]), log([0.5, 0.25, 0.125, 0.125])
    assert kl_divergence(p, q).item() == pytest.approx(0.5 * LN2)
    assert kl_divergence(q, q).item() == pytest.approx(0.0, abs=1e-12)
    # KL(q || p) is infinite where p = 0 and q > 0: the probe always uses a smoothed q
    assert kl_divergence(q, p).item() == math.inf


def test_restrict_renormalises():
    out = restrict(log([0.5, 0.25, 0.25]), torch.tensor([False, True, True])).exp()
    assert out.tolist() == pytest.approx([0.0, 0.5, 0.5])


def test_frequency_ranks_ties_share_the_best_rank():
    q = torch.tensor([0.1, 0.4, 0.2, 0.2, 0.1])
    assert frequency_ranks(q).tolist() == [4, 1, 2, 2, 4]
    keep = torch.tensor([True, False, True, True, True])  # without token 1
    assert frequency_ranks(q, keep)[[0, 2, 3, 4]].tolist() == [3, 1, 1, 3]


def test_position_stats_on_two_positions():
    # vocabulary: 0 = EOS (special), 1 = "the", 2 = "cells", 3 = "move"
    special = torch.tensor([True, False, False, False])
    unigram = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
    log_p = log([[[0.0, 0.15, 0.8, 0.05],   # near: content-specific "cells"
                  [0.7, 0.2, 0.06, 0.04]]])  # far: mostly EOS, then "the"
    s = position_stats(log_p, special, eos_id=0, unigram=unigram, top_k=2)
    assert s["p_eos"][0].tolist() == pytest.approx([0.0, 0.7])
    assert s["p_special"][0].tolist() == pytest.approx([0.0, 0.7])
    assert s["topk_ids"][0].tolist() == [[2, 1], [0, 1]]
    assert s["topk_probs"][0].flatten().tolist() == pytest.approx([0.8, 0.15, 0.7, 0.2])
    # without special tokens the model's own probabilities are kept (not renormalised)
    assert s["topk_ids_content"][0].tolist() == [[2, 1], [1, 2]]
    assert s["topk_probs_content"][0, 1].tolist() == pytest.approx([0.2, 0.06])
    assert s["rank"][0].tolist() == [3, 1]  # "cells" is 3rd most frequent, EOS 1st
    assert s["rank_content"][0].tolist() == [2, 1]  # among non-special tokens: "the" 1st
    p_far = torch.tensor([0.7, 0.2, 0.06, 0.04], dtype=torch.float64)
    assert s["kl"][0, 1].item() == pytest.approx((p_far * (p_far / unigram).log()).sum().item())
    pc, qc = torch.tensor([0.2, 0.06, 0.04]) / 0.3, torch.tensor([0.3, 0.2, 0.1]) / 0.6
    assert s["kl_content"][0, 1].item() == pytest.approx((pc * (pc / qc).log()).sum().item(), rel=1e-6)
    assert s["kl"][0, 1] < s["kl"][0, 0]  # the far prediction is closer to the unigram


def test_position_stats_without_unigram_or_eos_leaves_them_out():
    s = position_stats(log([[[0.5, 0.5]]]), torch.tensor([False, False]), eos_id=None, unigram=None,
                       top_k=1, exclude_special=False)
    assert set(s) == {"entropy", "p_special", "topk_ids", "topk_probs", "top1_prob"}


def _result(values: dict, n: int) -> ProbeResult:
    stats = {k: torch.tensor(v, dtype=torch.float64) for k, v in values.items()}
    return ProbeResult(prompts=["a", "b"], prompt_lengths=[1, 1], n_masks=n, stats=stats)


def test_per_position_mean_std_median_and_quarters():
    result = _result({"kl": [[4.0, 3.0, 2.0, 1.0, 0.0], [2.0, 3.0, 2.0, 1.0, 0.0]]}, n=5)
    agg = per_position(result)["kl"]
    assert agg["mean"] == pytest.approx([3.0, 3.0, 2.0, 1.0, 0.0])
    assert agg["std"] == pytest.approx([math.sqrt(2.0), 0.0, 0.0, 0.0, 0.0])  # n - 1 normalisation
    assert [(s.start, s.stop) for s in quarter_slices(5)] == [(0, 1), (1, 2), (2, 3), (3, 5)]
    assert quarters(result)["kl"] == pytest.approx([3.0, 3.0, 2.0, 0.5])
    assert trends(result)["kl"] == pytest.approx(-0.9746794, rel=1e-6)  # ties at positions 1-2


def test_spearman_and_average_ranks():
    assert average_ranks([10.0, 20.0, 20.0, 5.0]) == [2.0, 3.5, 3.5, 1.0]
    assert spearman([1, 2, 3, 4], [1, 4, 9, 16]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [3, 2, 1, 0]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))


def test_top1_shares_count_prompts_per_position():
    ids = torch.tensor([[[7], [9], [9]], [[7], [7], [9]]])  # 2 prompts, 3 positions, k = 1
    result = ProbeResult(["a", "b"], [1, 1], 3, {"topk_ids": ids})
    tokens, shares = top1_shares(result)
    assert tokens == [7, 9]  # 7 and 9 are both top-1 three times: ties keep id order
    assert shares.tolist() == [[1.0, 0.5, 0.0], [0.0, 0.5, 1.0]]


def test_collapse_summary_compares_first_and_last_quarter():
    summary = collapse_summary({"kl": [2.0, 1.5, 1.0, 0.5], "p_eos": [0.0, 0.1, 0.5, 0.9]},
                               {"kl": -1.0, "p_eos": 1.0})
    assert summary["kl_last_below_first"] and summary["p_eos_rises"]
    assert summary["kl_first_quarter"] == 2.0 and summary["p_eos_last_quarter"] == 0.9
