"""Committed-then-invalid multi-token entities: the marginal trap seen in a decoder's trace.

A *mixed pair* is two adjacent tokens (a, b) where a is a non-final word of some multi-token entity,
b a non-initial word of one, and "a b" occurs inside no entity ("new diego", "san york"). We count
the mixed pairs whose two tokens were committed in the same step (DecodeOutput.commit_step): tokens
that were sampled independently from their marginals and could not see each other.
"""

from __future__ import annotations

import torch


def mixed_pair_codes(entities, vocab: dict[str, int], vocab_size: int) -> torch.Tensor:
    """Sorted codes a * V + b of the mixed pairs, long [n] (empty without multi-token entities)."""
    entities = [tuple(e) for e in entities if len(e) > 1 and all(w in vocab for w in e)]
    firsts = {vocab[w] for e in entities for w in e[:-1]}
    seconds = {vocab[w] for e in entities for w in e[1:]}
    inside = {(vocab[a], vocab[b]) for e in entities for a, b in zip(e, e[1:])}
    codes = sorted(a * vocab_size + b for a in firsts for b in seconds if (a, b) not in inside)
    return torch.tensor(codes, dtype=torch.long)


def committed_mixed_pairs(answers: torch.Tensor, commit_step: torch.Tensor, codes: torch.Tensor,
                          vocab_size: int) -> torch.Tensor:
    """Per row, the mixed pairs committed in one step, long [B]. answers, commit_step: [B, A]."""
    pairs = answers[:, :-1] * vocab_size + answers[:, 1:]
    same_step = (commit_step[:, :-1] == commit_step[:, 1:]) & (commit_step[:, :-1] >= 0)
    return (torch.isin(pairs, codes.to(pairs.device)) & same_step).sum(dim=1)
