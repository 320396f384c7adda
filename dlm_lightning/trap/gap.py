"""The factorisation gap of a trained run on held-out data (metrics/factorisation.py), per k and distance."""

from __future__ import annotations

import torch

from dlm_lightning.errors import require
from dlm_lightning.metrics.factorisation import GapAccumulator, joint_gain, pairs_at_distance, window_subsets
from dlm_lightning.masked_diffusion import T_MIN, answer_distance, corrupt


@torch.no_grad()
def measure_gap(run, ks: list[int], distances: list[int], samples: int, batch_size: int, seed: int,
                split: str = "test") -> list[dict]:
    """Rows {by: k | distance, value, positions, gap_nats_per_token, stderr, rows}: the expected gain of
    the dependency head's joint over the product of marginals, at t ~ U(1e-3, 1) under the run's schedule."""
    module, info = run.module, run.info
    require(all(k >= 2 for k in ks), "gap_ks", ks, "tokens committed together, each >= 2")
    require(all(1 <= d < info.answer_length for d in distances), "gap_distances", distances,
            f"each between 1 and {info.answer_length - 1} (the answer length - 1)")
    dataset = run.datamodule.dataset(split)  # first: a data module may settle its split sizes here
    size = run.datamodule.sizes[split]
    require(1 <= samples <= size, "samples", samples, f"must be between 1 and the {split} split's {size}")
    head = module.dependency_head
    window = head.window if head is not None else max(ks, default=2)
    distance = answer_distance(info.seq_len, info.prompt_length)
    generator = torch.Generator().manual_seed(seed)
    totals = GapAccumulator()
    for start in range(0, samples, batch_size):
        x0 = torch.stack([dataset[i]["input_ids"] for i in range(start, min(start + batch_size, samples))])
        u = T_MIN + (1 - T_MIN) * torch.rand(x0.shape[0], generator=generator)
        t, _ = module.schedule.time_from_uniform(u)
        z, masked = corrupt(x0, t, module.schedule, distance, info.prompt_length, info.mask_id,
                            torch.rand(x0.shape, generator=generator))
        out = module.denoiser(z, t)
        for k in ks:
            positions, usable = window_subsets(masked, k, window, generator)
            totals.add(("k", k), joint_gain(head, out, x0, positions)[usable] / k)
        for d in distances:
            positions, usable = pairs_at_distance(masked, d, generator)
            totals.add(("distance", d), joint_gain(head, out, x0, positions)[usable] / 2)
    return totals.rows()
