"""The autoregressive baseline as a LightningModule (``objective=autoregressive``).

It shares the diffusion module's data handling, metrics, optimizer, checkpoints and sample records,
and replaces what is specific to diffusion: the loss is the exact next-token NLL of the answer
tokens, logged under the same keys as the diffusion bound (``val/nelbo``, ``val/bpt``, ``val/ppl``)
so the two sit in one table, but here they are exact; samples are drawn left to right with the
decoder's sampling options (its tokens-per-step and remasking settings do not apply). The schedule is
built (sweeps cross it with the objective) and unused.
"""

from __future__ import annotations

import time

import torch

from dlm_lightning.autoregressive.lm import answer_nll, sample_left_to_right
from dlm_lightning.errors import TrainingDiverged, require
from dlm_lightning.metrics.entities import committed_mixed_pairs
from dlm_lightning.metrics.nelbo import NELBOBound
from dlm_lightning.metrics.samples import SampleQuality
from dlm_lightning.module import MaskedDiffusionLM
from dlm_lightning.sample_records import sample_records
from dlm_lightning.seeding import derived_generator


class AutoregressiveLM(MaskedDiffusionLM):
    #: the reported val/nelbo, val/ppl are exact NLL and perplexity, not bounds
    exact_likelihood = True

    def __init__(self, *args, dependency_head=None, **kwargs):
        require(dependency_head is None, "head", "dependency",
                "the autoregressive objective samples one token per step and has no dependency head: use head=null")
        super().__init__(*args, dependency_head=None, **kwargs)
        require(getattr(self.backbone, "causal", False), "model.causal", getattr(self.backbone, "causal", None),
                "must be true for objective=autoregressive (a bidirectional model would see the token it predicts)")

    @property
    def backbone(self) -> torch.nn.Module:
        return self.denoiser.backbone

    def _answer_nll(self, x0: torch.Tensor) -> torch.Tensor:
        return answer_nll(self.backbone, x0, self.info.prompt_length, self.info.mask_id)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self._answer_nll(batch["input_ids"]).mean()
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"training loss is {loss.item()} at step {self.global_step}; run stopped")
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def _eval_step(self, batch: dict, batch_idx: int, nelbo: NELBOBound, samples: SampleQuality,
                   decode: bool, stage: str = "val", positions=None) -> dict | None:
        x0 = batch["input_ids"]
        nll = self._answer_nll(x0)
        nelbo.update(nll.sum(dim=1), torch.full_like(nll[:, 0], nll.shape[1]))
        if not decode:
            return None
        generator = derived_generator(self.seed, "decode", int(batch["index"][0]), device=self.device)
        start = time.perf_counter()
        out = sample_left_to_right(self.backbone, x0[:, : self.info.prompt_length], self.info.answer_length,
                                   self.info.mask_id, self.info.eos_id, self.decoder, generator)
        out.seconds = time.perf_counter() - start
        answers = out.tokens[:, self.info.prompt_length:]
        records, checks = sample_records(self.info, out.tokens, batch["index"])
        entity_errors = (committed_mixed_pairs(answers, out.commit_step, self.entity_codes, self.info.vocab_size)
                         if self.info.entities else None)  # one token per step: always 0, kept for the table
        samples.update(answers, checks, out.nfe, out.seconds, entity_errors)
        return {"samples": records}
