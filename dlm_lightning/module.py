"""The LightningModule: composes a backbone, a noise schedule and a decoder, and orchestrates them.

It owns no formula: the NELBO lives in ``nelbo``, masking and reverse steps in the schedule, sampling
in the decoder, and metric bookkeeping in ``metrics``.
"""

from __future__ import annotations

from typing import Callable

import lightning as L
import torch
from torch import nn

from dlm_lightning.run.checkpoint import check_signature, model_signature
from dlm_lightning.data.info import DataInfo
from dlm_lightning.data.portable import info_to_dict
from dlm_lightning.decoders.base import DecodeContext, Decoder
from dlm_lightning.errors import TrainingDiverged, require
from dlm_lightning.loss_weights import training_weights
from dlm_lightning.metrics.collapse import CollapseMetrics
from dlm_lightning.metrics.entities import committed_mixed_pairs, mixed_pair_codes
from dlm_lightning.metrics.nelbo import NELBOBound
from dlm_lightning.metrics.positions import POSITION_PREFIX, PositionDiagnostics
from dlm_lightning.metrics.samples import SampleQuality
from dlm_lightning.models.denoiser import Denoiser
from dlm_lightning.masked_diffusion import T_MIN, answer_distance, bound_terms, draw_nelbo, stratified_times
from dlm_lightning.sample_records import sample_records
from dlm_lightning.schedules.base import NoiseSchedule
from dlm_lightning.seeding import derived_generator


class MaskedDiffusionLM(L.LightningModule):
    def __init__(self, backbone: nn.Module, schedule: NoiseSchedule, decoder: Decoder, data_info: DataInfo,
                 optimizer: Callable, lr_schedule: Callable | None = None, seed: int = 0,
                 train_t_range: tuple[float, float] = (T_MIN, 1.0), eval_decode_batches: int = 1,
                 dependency_head: nn.Module | None = None, cart: bool = False, cart_p: float = 0.3):
        super().__init__()
        lr = getattr(optimizer, "keywords", {}).get("lr", 1.0)
        require(lr > 0, "optimizer.lr", lr, "must be > 0")
        low, high = train_t_range
        require(T_MIN <= low < high <= 1.0, "train_t_range", list(train_t_range),
                f"must satisfy {T_MIN} <= low < high <= 1 (training only; reported NELBO always uses [{T_MIN}, 1])")
        require(eval_decode_batches >= 0, "eval_decode_batches", eval_decode_batches, "must be >= 0")
        require(0 < cart_p < 1, "cart_p", cart_p, "must be in (0, 1)")
        # CART: context-adaptive training weights (loss_weights.py); never in the reported bound
        self.cart_p = float(cart_p) if cart else None
        self.info, self.schedule, self.decoder = data_info, schedule, decoder
        schedule.setup(data_info)
        self.denoiser = Denoiser(backbone, data_info.mask_id, schedule.needs_time)
        # optional (head=dependency): trained with the backbone, used by decoders that need it
        self.dependency_head = dependency_head
        self.optimizer_factory, self.lr_schedule_factory = optimizer, lr_schedule
        self.seed, self.train_t_range, self.eval_decode_batches = seed, tuple(train_t_range), eval_decode_batches
        self.register_buffer("distance", answer_distance(data_info.seq_len, data_info.prompt_length),
                             persistent=False)
        # the bound's last step (and a schedule's prior at t = 1) draws tokens from the training unigram
        self.register_buffer("log_unigram", data_info.unigram().log().float(), persistent=False)
        self.val_positions = PositionDiagnostics(data_info.prompt_length, data_info.answer_length)
        vocab = data_info.tokenizer.get_vocab() if data_info.entities else {}
        self.register_buffer("entity_codes", mixed_pair_codes(data_info.entities, vocab, data_info.vocab_size),
                             persistent=False)
        ignored, rules = tuple(data_info.special_ids), data_info.rules
        self.val_nelbo, self.test_nelbo = NELBOBound(), NELBOBound()
        self.val_samples = SampleQuality(data_info.vocab_size, rules, ignored)
        self.test_samples = SampleQuality(data_info.vocab_size, rules, ignored)
        # decoded answers against the data's for the same prompts (length bias, token profile, diversity)
        self.val_collapse, self.test_collapse = CollapseMetrics.for_data(data_info), CollapseMetrics.for_data(data_info)

    # ---- training -------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        x0 = batch["input_ids"]
        # noise is a function of (seed, step, rank): resumed runs are exact
        noise = derived_generator(self.seed, "train", self.global_step, self.global_rank, device=x0.device)
        u = stratified_times(x0.shape[0], noise, *self.train_t_range, device=x0.device)
        draws = [self._nelbo(x0, u, torch.rand(x0.shape, generator=noise, device=x0.device))
                 for _ in range(self.schedule.training_draws)]
        per_sequence = torch.stack([self._training_terms(x0, draw).sum(dim=1) for draw in draws]).mean(dim=0)
        per_sequence = per_sequence + self.schedule.gradient_surrogate(x0, self.distance[: x0.shape[1]], draws)
        # variable-length batches (data.variable_length) are cropped: normalise by their own length
        loss = per_sequence.sum() / (x0.shape[0] * (x0.shape[1] - self.info.prompt_length))
        if self.dependency_head is not None:
            draw = draws[0]
            head_loss = self.dependency_head.loss(x0, draw.masked, draw.out.hidden, draw.out.log_probs, noise)
            self.log("train/head_loss", head_loss)
            loss = loss + self.dependency_head.loss_weight * head_loss
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"training loss is {loss.item()} at step {self.global_step}; run stopped")
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def _training_terms(self, x0, draw) -> torch.Tensor:
        """The draw's terms times the training-only weights (padding=excluded, CART)."""
        weights = training_weights(x0, draw.masked, draw.t, self.info.prompt_length, self.info.end_ids,
                                   self.info.loss_excludes_padding, self.cart_p)
        return draw.terms if weights is None else draw.terms * weights

    def _nelbo(self, x0, u, uniforms):
        """One draw (nelbo.Draw: terms, masked, t, out) at the times the schedule maps u to."""
        return draw_nelbo(self.denoiser, self.schedule, x0, u, uniforms, self.distance[: x0.shape[1]],
                          self.info.prompt_length, self.info.mask_id)

    # ---- evaluation -----------------------------------------------------------------------------
    def _eval_noise(self, index: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise as a function of the sample's index alone, so any sharding gives the same estimate."""
        times, uniforms = [], []
        for i in index.tolist():
            g = derived_generator(self.seed, "eval_noise", i)
            times.append(T_MIN + (1.0 - T_MIN) * torch.rand((), generator=g))
            uniforms.append(torch.rand(length, generator=g))
        return torch.stack(times).to(self.device), torch.stack(uniforms).to(self.device)

    def _eval_step(self, batch: dict, batch_idx: int, nelbo: NELBOBound, samples: SampleQuality,
                   decode: bool, stage: str = "val", positions: PositionDiagnostics | None = None) -> dict | None:
        """Updates the metrics; returns the decoded samples as records ({"samples": [...]}) when it decodes:
        callbacks.SampleWriter takes them from there."""
        x0 = batch["input_ids"]
        u, uniforms = self._eval_noise(batch["index"], x0.shape[1])
        draw = self._nelbo(x0, u, uniforms)
        terms = bound_terms(self.schedule, draw, x0, self.distance[: x0.shape[1]], self.info.prompt_length,
                            self.log_unigram)
        nelbo.update(terms.sum(dim=1), torch.full_like(u, self.info.answer_length))
        if positions is not None:
            positions.update(terms, draw.masked, draw.out.log_probs, x0)
        first = int(batch["index"][0])  # streams keyed by the batch's first sample: any sharding agrees
        if self.dependency_head is not None:
            subsets = derived_generator(self.seed, "eval_subsets", first, device=self.device)
            head_loss = self.dependency_head.loss(x0, draw.masked, draw.out.hidden, draw.out.log_probs, subsets)
            self.log(f"{stage}/head_loss", head_loss, batch_size=x0.shape[0])
        if decode:
            generator = derived_generator(self.seed, "decode", first, device=self.device)
            out = self.decoder.decode(self.decode_context(), x0[:, : self.info.prompt_length],
                                      self.info.answer_length, generator)
            answers = out.tokens[:, self.info.prompt_length:]
            records, checks = sample_records(self.info, out.tokens, batch["index"])
            entity_errors = (committed_mixed_pairs(answers, out.commit_step, self.entity_codes, self.info.vocab_size)
                             if self.info.entities else None)
            samples.update(answers, checks, out.nfe, out.seconds, entity_errors)
            collapse = self.val_collapse if stage == "val" else self.test_collapse
            collapse.update(answers, x0[:, self.info.prompt_length:])
            return {"samples": records}
        return None

    def decode_context(self) -> DecodeContext:
        return DecodeContext(self.denoiser, self.schedule, self.info.mask_id, self.info.eos_id,
                             getattr(self, "dependency_head", None), self.info.pad_ids)

    def validation_step(self, batch: dict, batch_idx: int) -> dict | None:
        return self._eval_step(batch, batch_idx, self.val_nelbo, self.val_samples,
                               decode=batch_idx < self.eval_decode_batches, positions=self.val_positions)

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val", self.val_nelbo, self.val_samples, self.val_collapse)
        if self.val_positions.update_count > 0:
            by_distance = self.val_positions.compute()
            self.val_positions.reset()
            self.log_dict({f"{POSITION_PREFIX}{k}": v.float() for k, v in by_distance.items()}, sync_dist=True)

    def test_step(self, batch: dict, batch_idx: int) -> dict | None:
        return self._eval_step(batch, batch_idx, self.test_nelbo, self.test_samples, decode=True, stage="test")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test", self.test_nelbo, None)
        self._log_metrics("sample", None, self.test_samples, self.test_collapse)

    def _log_metrics(self, prefix: str, nelbo: NELBOBound | None, samples: SampleQuality | None,
                     collapse: CollapseMetrics | None = None) -> None:
        values = {}
        for metric in (nelbo, samples, collapse):
            if metric is not None and metric.update_count > 0:
                values.update(metric.compute())
                metric.reset()
        # values are already reduced over ranks by torchmetrics; averaging identical copies changes
        # nothing and keeps Lightning from warning about unsynced epoch-level logs under DDP
        if "nelbo" in values and not torch.isfinite(values["nelbo"]):
            raise TrainingDiverged(f"{prefix}/nelbo is {values['nelbo'].item()} at step {self.global_step}; run stopped "
                                   f"(a non-finite bound must not be saved as a best checkpoint)")
        self.log_dict({f"{prefix}/{k}": v.float() for k, v in values.items()}, sync_dist=True)

    # ---- optimisation and checkpoints -----------------------------------------------------------
    def configure_optimizers(self):
        # frozen weights (a frozen pretrained backbone) get no optimizer state
        optimizer = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        if self.lr_schedule_factory is None:
            return optimizer
        scheduler = self.lr_schedule_factory(optimizer, total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["dlm_signature"] = {"data": self.info.signature(), "model": model_signature(self)}
        checkpoint["dlm_data_info"] = info_to_dict(self.info)  # load_run needs no data module

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        check_signature(checkpoint.get("dlm_signature"), {"data": self.info.signature(),
                                                          "model": model_signature(self)})
