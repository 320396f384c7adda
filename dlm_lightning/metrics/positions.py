"""Per-position diagnostics: the NELBO contribution and the denoiser's accuracy by distance from the
prompt, in equal-width distance buckets (float64 sums, summed over DDP ranks)."""

from __future__ import annotations

import torch
from torchmetrics import Metric


def distance_buckets(answer_length: int, num_buckets: int) -> list[tuple[int, int]]:
    """Inclusive distance ranges (first, last) of ``num_buckets`` near-equal buckets (fewer if A is small)."""
    n = max(1, min(num_buckets, answer_length))
    edges = [round(k * answer_length / n) for k in range(n + 1)]
    return [(edges[k], edges[k + 1] - 1) for k in range(n)]


POSITION_PREFIX = "val/position/"  # where the module logs compute()'s values


class PositionDiagnostics(Metric):
    full_state_update = False

    def __init__(self, prompt_length: int, answer_length: int, num_buckets: int = 8):
        super().__init__()
        self.prompt_length = prompt_length
        self.buckets = distance_buckets(answer_length, num_buckets)
        index = torch.zeros(answer_length, dtype=torch.long)
        for k, (first, last) in enumerate(self.buckets):
            index[first:last + 1] = k
        self.register_buffer("bucket_of_distance", index, persistent=False)
        n = len(self.buckets)
        for name in ("nats", "positions", "masked", "correct"):
            self.add_state(name, torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, terms: torch.Tensor, masked: torch.Tensor, log_probs: torch.Tensor, x0: torch.Tensor) -> None:
        """terms: [B, L] per-position NELBO bound (nats); masked: [B, L]; log_probs: [B, L, V]; x0: [B, L]."""
        p = self.prompt_length
        masked = masked[:, p:]
        correct = (log_probs[:, p:].argmax(dim=-1) == x0[:, p:]) & masked
        n = len(self.buckets)

        def per_bucket(values: torch.Tensor) -> torch.Tensor:
            sums = values.double().sum(dim=0)  # [A]
            index = self.bucket_of_distance[: sums.numel()]  # a cropped batch covers the nearest distances
            return torch.zeros(n, dtype=torch.float64, device=sums.device).index_add_(0, index, sums)

        self.nats += per_bucket(terms[:, p:])
        self.positions += per_bucket(torch.ones_like(masked, dtype=torch.float64))
        self.masked += per_bucket(masked)
        self.correct += per_bucket(correct)

    def compute(self) -> dict[str, torch.Tensor]:
        """``nelbo/dFIRST-LAST`` (nats per answer token in the bucket) and ``accuracy/dFIRST-LAST``
        (argmax == x0 among masked positions)."""
        out = {}
        for k, (first, last) in enumerate(self.buckets):
            name = f"d{first:02d}-{last:02d}"
            out[f"nelbo/{name}"] = self.nats[k] / self.positions[k]
            out[f"accuracy/{name}"] = self.correct[k] / self.masked[k]
        return out


def position_figure(values: dict[str, float]):
    """Both curves of ``compute``'s values (``nelbo/dFIRST-LAST``, ``accuracy/dFIRST-LAST``) against distance
    from the prompt, as a matplotlib figure (no GUI backend needed)."""
    from matplotlib.figure import Figure

    names = sorted((key.split("/", 1)[1] for key in values if key.startswith("nelbo/")),
                   key=lambda name: int(name[1:].split("-")[0]))
    labels = [name[1:] for name in names]
    fig = Figure(figsize=(8, 3.2))
    for axis, (stat, ylabel) in zip(fig.subplots(1, 2), (("nelbo", "NELBO (nats / token)"),
                                                          ("accuracy", "accuracy at masked positions"))):
        axis.plot(labels, [float(values[f"{stat}/{n}"]) for n in names], marker="o")
        axis.set_xlabel("distance from the prompt")
        axis.set_ylabel(ylabel)
        axis.tick_params(axis="x", labelrotation=45)
    fig.tight_layout()
    return fig
