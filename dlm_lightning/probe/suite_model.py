"""A run of this suite as a probe model: the training layout, capped at the model's answer length."""

from __future__ import annotations

import torch

from dlm_lightning.errors import UserError
from dlm_lightning.probe.source import ProbeModel, resolve_device
from dlm_lightning.run.load import load_run


class SuiteModel(ProbeModel):
    def __init__(self, run: str, checkpoint: str = "last", device: str = "cpu"):
        self.device = resolve_device(device)
        self.loaded = load_run(run, checkpoint, self.device)
        info = self.loaded.info
        self.info = info
        self.name = str(self.loaded.checkpoint)
        self.tokenizer = info.tokenizer
        self.mask_id, self.eos_id, self.special_ids = info.mask_id, info.eos_id, tuple(info.special_ids)
        self.vocab_size = info.vocab_size
        layout = (f"[BOS] prompt [SEP], left-padded to {info.prompt_length} tokens" if info.prompt_length > 0
                  else "the prompt starts the sequence (the model was trained on unconditional text)")
        self.notes = [f"suite run {self.loaded.run_dir} (checkpoint {self.loaded.checkpoint.name}, "
                      f"schedule {self.loaded.schedule_name}); prompts use the training layout: {layout}"]

    def encode(self, text: str) -> list[int]:
        tok = self.tokenizer
        ids = tok(text, add_special_tokens=False)["input_ids"]
        # the word-level tokenizer maps unknown words to [PAD]: a prompt outside the vocabulary
        if self.info.pad_id in ids and tok.pad_token not in text.split():
            raise UserError(f"prompt {text[:60]!r} has words outside the vocabulary of {self.name}; "
                            f"suite models can only be probed with prompts in their training vocabulary")
        if self.info.prompt_length > 0 and tok.bos_token_id is not None and tok.sep_token_id is not None:
            if not ids or ids[0] != tok.bos_token_id:
                ids = [tok.bos_token_id] + ids
            if ids[-1] != tok.sep_token_id:
                ids = ids + [tok.sep_token_id]
        if self.info.prompt_length > 0 and len(ids) > self.info.prompt_length:
            raise UserError(f"prompt {text[:60]!r} has {len(ids)} tokens; this model's prompts hold at "
                            f"most {self.info.prompt_length}")
        return ids

    def capacity(self, prompts):
        # the backbone was trained on seq_len positions: the prompt region, then the answer
        if self.info.prompt_length > 0:
            return self.info.answer_length
        return self.info.seq_len - max(len(p) for p in prompts)

    @torch.no_grad()
    def mask_log_probs(self, prompts: list[list[int]], n_masks: int) -> torch.Tensor:
        width = self.info.prompt_length
        if width == 0:  # unconditional text: no padding was seen in training, so one prompt at a time
            if len({len(p) for p in prompts}) > 1:
                return torch.cat([self.mask_log_probs([p], n_masks) for p in prompts])
            width = len(prompts[0])
        rows = [[self.info.pad_id] * (width - len(p)) + p + [self.mask_id] * n_masks for p in prompts]
        z = torch.tensor(rows, dtype=torch.long, device=self.device)
        t = torch.ones(len(rows), device=self.device)  # every answer position masked: t = 1
        return self.loaded.module.denoiser(z, t).log_probs[:, width:].float()

    def training_unigram(self):
        return self.info.unigram(), "the run's training split (answer tokens, add-one smoothed)"
