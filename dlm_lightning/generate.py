"""Decoding text prompts with any decoder: a Python API behind ``python -m experiments.generate``.

``load_generator(path)`` takes a suite run directory (or one of its checkpoints), a directory exported
with ``save_pretrained``, or a Hugging Face masked (diffusion) LM by hub name or local path (``hf``
options: mask id, remote code, Dream's shifted logits, dtype). ``Generator.generate`` decodes one
prompt at a time, so no padding enters a prompt the model would not have seen, and can record the
canvas before every denoiser call (the intermediate denoising states).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from dlm_lightning.data.info import DataInfo
from dlm_lightning.decoders.base import DecodeContext, Decoder
from dlm_lightning.errors import ConfigError, UserError, require
from dlm_lightning.run.layout import CONFIG_FILE

HF_DEFAULTS = {"mask_id": None, "trust_remote_code": False, "shift_logits": False, "dtype": "float32",
               "revision": None, "auto_class": "auto"}


@dataclass
class Generation:
    prompt: str
    answer: str
    tokens: list[int]  # prompt (as the model saw it) + answer
    nfe: int
    states: list[str] = field(default_factory=list)  # the answer before each denoiser call, then the final one


class RecordingDenoiser(torch.nn.Module):
    """Passes calls through to the denoiser and keeps each canvas it was given."""

    def __init__(self, denoiser: torch.nn.Module):
        super().__init__()
        self.denoiser, self.canvases = denoiser, []

    def forward(self, z: torch.Tensor, t: torch.Tensor):
        self.canvases.append(z.detach().cpu().clone())
        return self.denoiser(z, t)


class Generator:
    def __init__(self, context: DecodeContext, info: DataInfo, name: str, default_length: int,
                 layout_prompts: bool):
        self.context, self.info, self.name = context, info, name
        self.tokenizer, self.default_length = info.tokenizer, default_length
        # suite runs trained on prompts left-padded to prompt_length; other models take them as they are
        self.layout_prompts = layout_prompts and info.prompt_length > 0
        self.max_length: int | None = info.seq_len if layout_prompts else None  # prompt + answer

    def encode(self, text: str, chat_template: bool = True) -> list[int]:
        tok = self.tokenizer
        if chat_template and getattr(tok, "chat_template", None):
            text = tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                           add_generation_prompt=True)
            return tok(text, add_special_tokens=False)["input_ids"]  # the template wrote them already
        ids = tok(text, add_special_tokens=not self.layout_prompts)["input_ids"]
        if self.info.pad_id in ids and tok.pad_token not in text.split():  # word-level: unknown -> [PAD]
            raise UserError(f"prompt {text[:60]!r} has words outside the vocabulary of {self.name}")
        if self.layout_prompts and tok.bos_token_id is not None and tok.sep_token_id is not None:
            ids = ([] if ids[:1] == [tok.bos_token_id] else [tok.bos_token_id]) + ids
            ids = ids + ([] if ids[-1:] == [tok.sep_token_id] else [tok.sep_token_id])
        return ids

    def generate(self, prompts: list[str], decoder: Decoder, gen_length: int | None = None, seed: int = 0,
                 chat_template: bool = True, record_states: bool = False) -> list[Generation]:
        length = gen_length or self.default_length
        require(isinstance(length, int) and length >= 1, "gen_length", length, "must be an integer >= 1")
        if self.layout_prompts:
            require(length <= self.info.answer_length, "gen_length", length,
                    f"must be <= {self.info.answer_length}, the answer length {self.name} was trained on")
        return [self._one(prompt, decoder, length, seed, chat_template, record_states) for prompt in prompts]

    def _one(self, prompt, decoder, length, seed, chat_template, record_states) -> Generation:
        ids = self.encode(prompt, chat_template)
        if self.layout_prompts:
            if len(ids) > self.info.prompt_length:
                raise UserError(f"prompt {prompt[:60]!r} has {len(ids)} tokens; {self.name} takes at most "
                                f"{self.info.prompt_length}")
            ids = [self.info.pad_id] * (self.info.prompt_length - len(ids)) + ids
        if self.max_length is not None and len(ids) + length > self.max_length:
            raise ConfigError("gen_length", length, f"prompt ({len(ids)} tokens) + answer must fit the "
                              f"{self.max_length} positions {self.name} takes")
        device = next(self.context.denoiser.parameters()).device
        prompts = torch.tensor([ids], dtype=torch.long, device=device)
        recorder = RecordingDenoiser(self.context.denoiser) if record_states else None
        context = replace(self.context, denoiser=recorder) if recorder is not None else self.context
        out = decoder.decode(context, prompts, length, torch.Generator(device).manual_seed(seed))
        answer = out.tokens[0, len(ids):].tolist()
        states = []
        if recorder is not None:
            canvases = [c[0, len(ids):].tolist() for c in recorder.canvases] + [answer]
            states = [self.tokenizer.decode(c, skip_special_tokens=False) for c in canvases]
        return Generation(prompt, self.answer_text(answer), ids + answer, out.nfe, states)

    def answer_text(self, answer: list[int]) -> str:
        eos = self.info.eos_id
        if eos in answer:
            answer = answer[: answer.index(eos)]
        return self.tokenizer.decode(answer, skip_special_tokens=True)


def load_generator(path: str | Path, checkpoint: str = "last", device: str = "cpu",
                   hf: dict | None = None) -> Generator:
    """A suite run (``config.yaml`` + checkpoints), an exported model (``model.safetensors``), or a
    Hugging Face model (anything else: a hub name or a model directory)."""
    path_text = str(path)
    local = Path(path_text).expanduser()
    if (local / CONFIG_FILE).exists() or (local.is_file() and local.suffix == ".ckpt"):
        from dlm_lightning.run.load import load_run

        run = load_run(local, checkpoint, device)
        return Generator(run.module.decode_context(), run.info, str(run.run_dir), run.info.answer_length, True)
    from dlm_lightning.export import WEIGHTS, DLMForMaskedDiffusion

    if (local / WEIGHTS).exists() and _is_export(local):
        model = DLMForMaskedDiffusion.from_pretrained(local).to(device)
        return Generator(model.decode_context(), model.info, str(local), model.info.answer_length, True)
    return hf_generator(path_text, device, hf)


def _is_export(directory: Path) -> bool:
    import json

    config = directory / "config.json"
    return config.exists() and json.loads(config.read_text()).get("model_type") == "dlm-lightning"


def hf_generator(name: str, device: str = "cpu", hf: dict | None = None, gen_length: int = 64) -> Generator:
    """A pretrained Hugging Face model decoded as trained: uniform schedule, no dependency head."""
    from dlm_lightning.data.model_tokenizer import ModelTokenizer
    from dlm_lightning.models.denoiser import Denoiser
    from dlm_lightning.models.hf import HFBackbone
    from dlm_lightning.schedules.uniform import UniformSchedule

    options = {**HF_DEFAULTS, **dict(hf or {})}
    unknown = sorted(set(options) - set(HF_DEFAULTS))
    if unknown:
        raise ConfigError(f"hf.{unknown[0]}", options[unknown[0]], f"unknown key; valid keys: {', '.join(HF_DEFAULTS)}")
    tokenizer = ModelTokenizer(name, options["mask_id"], options["trust_remote_code"], options["revision"], key="hf").load()
    vocab = len(tokenizer)
    info = DataInfo(vocab_size=vocab, mask_id=tokenizer.mask_token_id, pad_id=tokenizer.pad_token_id,
                    eos_id=tokenizer.eos_token_id, prompt_length=0, seq_len=gen_length,
                    special_ids=tuple(sorted(set(tokenizer.all_special_ids))),
                    token_counts=torch.zeros(vocab, dtype=torch.float64), tokenizer=tokenizer)
    try:
        backbone = HFBackbone(vocab, 1, name_or_path=name, **{k: options[k] for k in HF_DEFAULTS if k != "mask_id"},
                              train_mode="frozen")
    except ConfigError as error:
        raise error.under("hf") if error.key != "name_or_path" else ConfigError("model", name, error.allowed) from None
    schedule = UniformSchedule()
    schedule.setup(info)
    denoiser = Denoiser(backbone, info.mask_id, needs_time=False).to(device).eval()
    context = DecodeContext(denoiser, schedule, info.mask_id, info.eos_id, None)
    generator = Generator(context, info, name, gen_length, False)
    config = backbone.model.config
    generator.max_length = getattr(config, "max_position_embeddings", None) or getattr(config, "max_sequence_length", None)
    return generator
