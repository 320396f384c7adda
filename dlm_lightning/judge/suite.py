"""An autoregressive run of this suite (objective=autoregressive) as the judge, on its own tokenizer."""

from __future__ import annotations

import torch

from dlm_lightning.autoregressive.lm import next_token_log_probs
from dlm_lightning.errors import require
from dlm_lightning.judge.base import Judge, JudgeError, require_mauve


class SuiteJudge(Judge):
    def __init__(self, run: str, checkpoint: str = "last", batch_size: int = 64, mauve: bool = False):
        require(isinstance(batch_size, int) and batch_size >= 1, "batch_size", batch_size, "an integer >= 1")
        require_mauve(mauve)
        from dlm_lightning.run.load import load_run

        loaded = load_run(run, checkpoint)
        if not getattr(loaded.module, "exact_likelihood", False):
            raise JudgeError(f"judge run {run} is a masked-diffusion run, not a causal language model: "
                             f"train the judge with objective=autoregressive")
        self.run, self.batch_size, self.mauve = str(run), batch_size, mauve
        self.backbone = loaded.module.backbone
        self.tokenizer, self.context = loaded.info.tokenizer, loaded.info.seq_len
        self.start_id, self.eos_id = loaded.info.mask_id, loaded.info.eos_id  # the run's start token is [MASK]

    def describe(self) -> str:
        return f"run {self.run}"

    @torch.no_grad()
    def log_probs(self, inputs: torch.Tensor) -> torch.Tensor:
        return next_token_log_probs(self.backbone, inputs, self.start_id)

    @torch.no_grad()
    def features(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        t = torch.zeros(inputs.shape[0]) if self.backbone.time_conditioning else None
        _, hidden = self.backbone(inputs, t)
        return hidden[torch.arange(len(lengths)), lengths - 1]
