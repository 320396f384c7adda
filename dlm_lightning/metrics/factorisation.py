"""The factorisation gap: what committing k positions from a product of marginals costs, measured.

For positions B = {sigma(1) < ... < sigma(k)} masked in z_t, the dependency head factorises
p(x_B | z_t) autoregressively; the gain of that joint over the product of marginals is

    gain(x) = sum_j [log q(x_sigma(j) | z_t, x_sigma(<j)) - log p(x_sigma(j) | z_t)]     (j = 1 adds 0)

and its expectation over held-out data is reported in nats per committed token (divided by k).
With an exact head and exact marginals, E[gain] is the conditional total correlation
sum_j H(x_sigma(j) | z_t) - H(x_B | z_t), the lower bound on a k-token step's error (ParallelBench,
arXiv 2510.04767). With exact marginals a learned head gives a lower bound on it (E[log q] <=
E[log p_true] for any model q); with learned marginals it is an estimate, negative where the head
predicts worse than the marginals it corrects (undertrained). Without a head, or with an untrained
(zero-output) one, it is exactly 0.

Positions are chosen as decoders commit them: k masked positions at random inside a window of
``window`` positions that starts at a random masked position (rows with fewer than k masked positions
there are left out); by distance: pairs (i, i + d), both masked.
"""

from __future__ import annotations

import math

import torch

from dlm_lightning.models.denoiser import DenoiserOutput


def joint_gain(head, out: DenoiserOutput, x0: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """gain(x0) in nats per row, float64 [B], for the sequence positions [B, k] (left to right)."""
    if head is None or positions.shape[1] < 2:
        return torch.zeros(x0.shape[0], dtype=torch.float64, device=x0.device)
    index = positions.unsqueeze(-1)
    hidden = out.hidden.gather(1, index.expand(-1, -1, out.hidden.shape[-1]))
    base = out.log_probs.gather(1, index.expand(-1, -1, out.log_probs.shape[-1]))
    tokens = x0.gather(1, positions)
    log_q = head(hidden, positions, tokens, base)
    picked = lambda lp: lp.double().gather(-1, tokens.unsqueeze(-1)).squeeze(-1)  # noqa: E731
    return (picked(log_q) - picked(base))[:, 1:].sum(dim=1)


def window_subsets(masked: torch.Tensor, k: int, window: int, generator: torch.Generator | None = None):
    """k masked positions per row inside a window from a random masked anchor: ([B, k], usable [B])."""
    batch, length = masked.shape
    pos = torch.arange(length, device=masked.device)
    noise = torch.rand((batch, length), generator=generator, device=masked.device)
    anchor = torch.where(masked, noise, 2.0).argmin(dim=1, keepdim=True)
    candidates = masked & (pos >= anchor) & (pos < anchor + window)
    score = torch.where(candidates, torch.rand((batch, length), generator=generator, device=masked.device), 2.0)
    chosen = candidates & (score.argsort(dim=1).argsort(dim=1) < k)
    positions = torch.where(chosen, pos, length + pos).argsort(dim=1)[:, :k]
    return positions.clamp(max=length - 1), chosen.sum(dim=1) == k


def pairs_at_distance(masked: torch.Tensor, distance: int, generator: torch.Generator | None = None):
    """(i, i + distance) with both masked, i at random per row: ([B, 2], usable [B])."""
    batch, length = masked.shape
    both = torch.zeros_like(masked)
    both[:, : length - distance] = masked[:, : length - distance] & masked[:, distance:]
    noise = torch.rand((batch, length), generator=generator, device=masked.device)
    first = torch.where(both, noise, 2.0).argmin(dim=1)
    return torch.stack([first, first + distance], dim=1).clamp(max=length - 1), both.any(dim=1)


class GapAccumulator:
    """Mean and standard error of gain / k over usable rows, per setting (``("k", 4)``, ``("distance", 2)``)."""

    def __init__(self):
        self.sums: dict[tuple, list[float]] = {}

    def add(self, key: tuple, per_token: torch.Tensor) -> None:
        total = self.sums.setdefault(key, [0.0, 0.0, 0.0])
        total[0] += per_token.numel()
        total[1] += float(per_token.sum())
        total[2] += float((per_token ** 2).sum())

    def rows(self) -> list[dict]:
        out = []
        for (kind, value), (n, s, s2) in sorted(self.sums.items()):
            mean = s / n if n else math.nan
            var = (s2 / n - mean ** 2) * n / (n - 1) if n > 1 else math.nan
            out.append({"by": kind, "value": value, "positions": 2 if kind == "distance" else value,
                        "gap_nats_per_token": mean, "stderr": math.sqrt(max(var, 0.0) / n) if n > 1 else math.nan,
                        "rows": int(n)})
        return out
