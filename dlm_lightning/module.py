"""The LightningModule: composes a backbone, a noise schedule and a decoder, and orchestrates them.

It owns no formula: the NELBO lives in ``nelbo``, masking and reverse steps in the schedule, sampling
in the decoder, and metric bookkeeping in ``metrics``.
"""

from __future__ import annotations

from typing import Callable

import lightning as L
import torch
from torch import nn

from dlm_lightning.checkpoint import check_signature, model_signature
from dlm_lightning.data.info import DataInfo
from dlm_lightning.decoders.base import DecodeContext, Decoder
from dlm_lightning.errors import TrainingDiverged, require
from dlm_lightning.metrics.nelbo import NELBOBound
from dlm_lightning.metrics.samples import SampleQuality
from dlm_lightning.models.denoiser import Denoiser
from dlm_lightning.nelbo import T_MIN, answer_distance, corrupt, nelbo_terms, stratified_times
from dlm_lightning.sample_records import sample_records
from dlm_lightning.schedules.base import NoiseSchedule


class MaskedDiffusionLM(L.LightningModule):
    def __init__(self, backbone: nn.Module, schedule: NoiseSchedule, decoder: Decoder, data_info: DataInfo,
                 optimizer: Callable, lr_schedule: Callable | None = None, seed: int = 0,
                 train_t_range: tuple[float, float] = (T_MIN, 1.0), eval_decode_batches: int = 1):
        super().__init__()
        lr = getattr(optimizer, "keywords", {}).get("lr", 1.0)
        require(lr > 0, "optimizer.lr", lr, "must be > 0")
        low, high = train_t_range
        require(T_MIN <= low < high <= 1.0, "train_t_range", list(train_t_range),
                f"must satisfy {T_MIN} <= low < high <= 1 (training only; reported NELBO always uses [{T_MIN}, 1])")
        require(eval_decode_batches >= 0, "eval_decode_batches", eval_decode_batches, "must be >= 0")
        self.info, self.schedule, self.decoder = data_info, schedule, decoder
        schedule.setup(data_info)
        self.denoiser = Denoiser(backbone, data_info.mask_id, schedule.needs_time)
        self.optimizer_factory, self.lr_schedule_factory = optimizer, lr_schedule
        self.seed, self.train_t_range, self.eval_decode_batches = seed, tuple(train_t_range), eval_decode_batches
        self.register_buffer("distance", answer_distance(data_info.seq_len, data_info.prompt_length),
                             persistent=False)
        ignored, rules = tuple(data_info.special_ids), data_info.rules
        self.val_nelbo, self.test_nelbo = NELBOBound(), NELBOBound()
        self.val_samples = SampleQuality(data_info.vocab_size, rules, ignored)
        self.test_samples = SampleQuality(data_info.vocab_size, rules, ignored)
        self.records: list[dict] = []

    # ---- training -------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        # Reseeding per step makes noise a function of (seed, step, rank): resumed runs are exact.
        torch.manual_seed(self.seed * 1_000_003 + self.global_step * 101 + self.global_rank)
        x0 = batch["input_ids"]
        t = stratified_times(x0.shape[0], None, *self.train_t_range, device=x0.device)
        terms, _ = self._nelbo(x0, t, torch.rand(x0.shape, device=x0.device))
        loss = terms.sum() / (x0.shape[0] * self.info.answer_length)
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"training loss is {loss.item()} at step {self.global_step}; run stopped")
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def _nelbo(self, x0, t, uniforms):
        z, masked = corrupt(x0, t, self.schedule, self.distance, self.info.prompt_length,
                            self.info.mask_id, uniforms)
        out = self.denoiser(z, t)
        return nelbo_terms(self.schedule, out, x0, masked, t, self.distance), out

    # ---- evaluation -----------------------------------------------------------------------------
    def _eval_noise(self, index: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise as a function of the sample's index alone, so any sharding gives the same estimate."""
        times, uniforms = [], []
        for i in index.tolist():
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
            times.append(T_MIN + (1.0 - T_MIN) * torch.rand((), generator=g))
            uniforms.append(torch.rand(length, generator=g))
        return torch.stack(times).to(self.device), torch.stack(uniforms).to(self.device)

    def _eval_step(self, batch: dict, batch_idx: int, nelbo: NELBOBound, samples: SampleQuality,
                   decode: bool) -> None:
        x0 = batch["input_ids"]
        t, uniforms = self._eval_noise(batch["index"], x0.shape[1])
        terms, _ = self._nelbo(x0, t, uniforms)
        nelbo.update(terms.sum(dim=1), torch.full_like(t, self.info.answer_length))
        if decode:
            generator = torch.Generator(self.device).manual_seed(self.seed * 7919 + batch_idx * 31 + self.global_rank)
            out = self.decoder.decode(self.decode_context(), x0[:, : self.info.prompt_length],
                                      self.info.answer_length, generator)
            answers = out.tokens[:, self.info.prompt_length:]
            records, checks = sample_records(self.info, out.tokens, batch["index"])
            samples.update(answers, checks, out.nfe, out.seconds)
            self.records.extend(records)

    def decode_context(self) -> DecodeContext:
        return DecodeContext(self.denoiser, self.schedule, self.info.mask_id, self.info.eos_id,
                             getattr(self, "dependency_head", None))

    def on_validation_epoch_start(self) -> None:
        self.records = []

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, batch_idx, self.val_nelbo, self.val_samples,
                        decode=batch_idx < self.eval_decode_batches)

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val", self.val_nelbo, self.val_samples)
        logger = self.logger.experiment if self.logger is not None else None
        if logger is not None and hasattr(logger, "add_text") and self.records:
            text = "\n\n".join(f"`{r['prompt']}` → `{r['answer']}` ({'valid' if r.get('valid', True) else r['violations']})"
                               for r in self.records[:8])
            logger.add_text("val/samples", text, self.global_step)

    def on_test_epoch_start(self) -> None:
        self.records = []

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, batch_idx, self.test_nelbo, self.test_samples, decode=True)

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test", self.test_nelbo, None)
        self._log_metrics("sample", None, self.test_samples)

    def _log_metrics(self, prefix: str, nelbo: NELBOBound | None, samples: SampleQuality | None) -> None:
        values = {}
        for metric in (nelbo, samples):
            if metric is not None and metric.update_count > 0:
                values.update(metric.compute())
                metric.reset()
        self.log_dict({f"{prefix}/{k}": v.float() for k, v in values.items()}, sync_dist=False)

    # ---- optimisation and checkpoints -----------------------------------------------------------
    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.lr_schedule_factory is None:
            return optimizer
        scheduler = self.lr_schedule_factory(optimizer, total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["dlm_signature"] = {"data": self.info.signature(), "model": model_signature(self)}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        check_signature(checkpoint.get("dlm_signature"), {"data": self.info.signature(),
                                                          "model": model_signature(self)})
