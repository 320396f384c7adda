"""Aggregates of a probe over prompts: per position, per quarter of the positions, and trends."""

from __future__ import annotations

import math

import torch

from dlm_lightning.probe.compute import ProbeResult

# scalar statistics, in report order; a probe holds the subset its model and unigram allow
METRICS = ("entropy", "p_eos", "p_special", "top1_prob", "kl", "kl_content", "rank", "rank_content")
LABELS = {"entropy": "entropy (nats)", "p_eos": "P(EOS)", "p_special": "P(special)",
          "top1_prob": "top-1 prob", "kl": "KL to unigram (nats)",
          "kl_content": "KL to unigram, no special (nats)", "rank": "freq. rank of top-1",
          "rank_content": "freq. rank of top-1, no special"}


def metrics_of(result: ProbeResult) -> list[str]:
    return [m for m in METRICS if result.has(m)]


def per_position(result: ProbeResult) -> dict[str, dict[str, list[float]]]:
    """metric -> {mean, std, median}: one value per position, over prompts (std: n - 1; 0 for one prompt)."""
    out = {}
    for name in metrics_of(result):
        values = result.stats[name].double()  # [P, N]
        std = values.std(dim=0) if values.shape[0] > 1 else torch.zeros(values.shape[1], dtype=torch.float64)
        out[name] = {"mean": values.mean(dim=0).tolist(), "std": std.tolist(),
                     "median": values.median(dim=0).values.tolist()}
    return out


def quarter_slices(n: int) -> list[slice]:
    """Four contiguous groups of positions, sizes differing by at most one (floor(i * n / 4) bounds)."""
    bounds = [i * n // 4 for i in range(5)]
    return [slice(bounds[i], bounds[i + 1]) for i in range(4)]


def quarters(result: ProbeResult) -> dict[str, list[float]]:
    """metric -> mean over prompts and positions in each quarter (empty quarters: nan)."""
    out = {}
    for name in metrics_of(result):
        values = result.stats[name].double()
        out[name] = [values[:, s].mean().item() if s.stop > s.start else math.nan
                     for s in quarter_slices(result.n_masks)]
    return out


def average_ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation (ties get average ranks); nan when either side is constant."""
    rx, ry = torch.tensor(average_ranks(x)), torch.tensor(average_ranks(y))
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = (rx.square().sum() * ry.square().sum()).sqrt()
    return (rx * ry).sum().div(denominator).item() if denominator > 0 else math.nan


def trends(result: ProbeResult, positions: dict | None = None) -> dict[str, float]:
    """Spearman correlation of each metric's per-position mean with the distance from the prompt."""
    positions = positions or per_position(result)
    distance = list(range(1, result.n_masks + 1))
    return {name: spearman(distance, values["mean"]) for name, values in positions.items()}


def top1_shares(result: ProbeResult, max_tokens: int = 12, content: bool = False) -> tuple[list[int], torch.Tensor]:
    """The tokens most often predicted top-1, and the share of prompts predicting each per position."""
    ids = result.stats["topk_ids_content" if content else "topk_ids"][..., 0]  # [P, N]
    tokens, counts = ids.unique(return_counts=True)
    chosen = tokens[counts.argsort(descending=True, stable=True)][:max_tokens]
    shares = torch.stack([(ids == token).double().mean(dim=0) for token in chosen])
    return chosen.tolist(), shares
