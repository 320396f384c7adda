"""Per-position statistics of predicted distributions (all in nats), exact and vectorised.

For a prediction p at one mask position and a corpus unigram q:
  entropy H(p) = -sum_v p_v log p_v;  KL(p || q) = sum_v p_v (log p_v - log q_v);
  frequency rank of a token v = 1 + #{u : q_u > q_v} (1 = the most frequent token; ties share a rank).
The "content" variants drop special tokens (EOS, padding, ...) from both p and q and renormalise, so
that a far position predicting mostly EOS padding is judged on what it predicts besides EOS.
"""

from __future__ import annotations

import torch


def entropy(log_p: torch.Tensor) -> torch.Tensor:
    p = log_p.exp()
    return -torch.where(p > 0, p * log_p, torch.zeros_like(p)).sum(-1)


def kl_divergence(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) over the last axis; q must be positive wherever p is."""
    p = log_p.exp()
    return torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p)).sum(-1)


def restrict(log_p: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """log p restricted to the ``keep`` entries and renormalised (-inf elsewhere)."""
    log_p = torch.where(keep, log_p, torch.full_like(log_p, float("-inf")))
    return log_p - log_p.logsumexp(-1, keepdim=True)


def frequency_ranks(q: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Rank of every token by corpus frequency among the ``keep`` tokens (long [V])."""
    considered = q if keep is None else q[keep]
    ordered = considered.sort().values
    greater = considered.numel() - torch.searchsorted(ordered, q, right=True)
    return greater + 1


def position_stats(log_p: torch.Tensor, special: torch.Tensor, eos_id: int | None,
                   unigram: torch.Tensor | None, top_k: int, exclude_special: bool = True) -> dict:
    """Statistics of predictions ``log_p`` [B, N, V]; returns CPU tensors [B, N] (top-k: [B, N, k]).

    ``special`` is a bool [V] mask; KL and ranks need ``unigram`` (float [V], positive) and are left
    out without it. Top-k probabilities are the model's own (not renormalised) in both variants.
    """
    log_p = log_p.double()
    out = {"entropy": entropy(log_p), "p_special": log_p.exp()[..., special].sum(-1)}
    if eos_id is not None:
        out["p_eos"] = log_p[..., eos_id].exp()
    probs, ids = log_p.topk(top_k, dim=-1)
    out.update(topk_ids=ids, topk_probs=probs.exp(), top1_prob=probs[..., 0].exp())
    content = None
    if exclude_special:
        content = log_p.masked_fill(special, float("-inf"))
        c_probs, c_ids = content.topk(top_k, dim=-1)
        out.update(topk_ids_content=c_ids, topk_probs_content=c_probs.exp())
    if unigram is not None:
        q = unigram.to(log_p.device, torch.float64)
        out["kl"] = kl_divergence(log_p, q.log())
        out["rank"] = frequency_ranks(q)[ids[..., 0]]
        if exclude_special:
            keep = ~special
            out["kl_content"] = kl_divergence(restrict(log_p, keep), restrict(q.log(), keep))
            out["rank_content"] = frequency_ranks(q, keep)[out["topk_ids_content"][..., 0]]
    return {key: value.cpu() for key, value in out.items()}
