"""Quality of decoded answers: validity and per-rule violations under a checker, unigram entropy,
NFE and tokens per second. Counts are summed over DDP ranks, so each sample counts once."""

from __future__ import annotations

import torch
from torchmetrics import Metric


class SampleQuality(Metric):
    full_state_update = False

    def __init__(self, vocab_size: int, rules: tuple[str, ...], ignored_ids: tuple[int, ...]):
        super().__init__()
        self.rules, self.ignored_ids = tuple(rules), tuple(ignored_ids)
        self.add_state("samples", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("valid", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("violations", torch.zeros(len(self.rules), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("token_counts", torch.zeros(vocab_size, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("nfe", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("batches", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("tokens", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("seconds", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        # multi-token entities committed in one step as an invalid pair (metrics/entities.py)
        self.add_state("entity_errors", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("entity_samples", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, answers: torch.Tensor, checks: list | None, nfe: int, seconds: float,
               entity_errors: torch.Tensor | None = None) -> None:
        """answers: [B, A] decoded ids; checks: one CheckResult per row, or None without a checker;
        entity_errors: [B] committed-then-invalid multi-token entities per row, if the data has any."""
        self.samples += answers.shape[0]
        if checks is not None:
            self.valid += sum(c.valid for c in checks)
            for i, rule in enumerate(self.rules):
                self.violations[i] += sum(rule in c.rules for c in checks)
        self.token_counts += torch.bincount(answers.flatten(), minlength=self.token_counts.numel()).double()
        self.nfe += nfe
        self.batches += 1
        self.tokens += answers.numel()
        self.seconds += seconds
        if entity_errors is not None:
            self.entity_errors += entity_errors.sum().double()
            self.entity_samples += answers.shape[0]

    def compute(self) -> dict[str, torch.Tensor]:
        counts = self.token_counts.clone()
        counts[list(self.ignored_ids)] = 0
        p = counts / counts.sum().clamp_min(1)
        entropy = -(p[p > 0] * p[p > 0].log2()).sum()
        out = {
            "unigram_entropy": entropy,
            "nfe": self.nfe / self.batches,
            "tokens_per_s": self.tokens / self.seconds.clamp_min(1e-9),
        }
        if self.rules:
            out["validity"] = self.valid / self.samples
            for i, rule in enumerate(self.rules):
                out[f"violation/{rule}"] = self.violations[i] / self.samples
        if self.entity_samples > 0:
            out["committed_invalid_entities"] = self.entity_errors / self.entity_samples
        return out
