"""Any Hugging Face masked LM or masked diffusion LM as a probe model, by hub name or local path.

BERT-style models load with AutoModelForMaskedLM; LLaDA and Dream ship their own code and load with
AutoModel and ``trust_remote_code`` (their forward also returns ``.logits``). Batches are padded on
the right with an attention mask, so each row's prompt and masks sit where they would alone.
"""

from __future__ import annotations

import torch
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoTokenizer

from dlm_lightning.errors import ConfigError, UserError, first_line, require
from dlm_lightning.models.hf import load_with_auto_classes, refuse_causal_lm
from dlm_lightning.probe.source import ProbeModel, resolve_device

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
AUTO_CLASSES = {"masked_lm": (AutoModelForMaskedLM,), "model": (AutoModel,),
                "auto": (AutoModelForMaskedLM, AutoModel)}


class HFModel(ProbeModel):
    def __init__(self, name: str, mask_id: int | None = None, eos_id: int | None = None,
                 dtype: str = "float32", device: str = "cpu", trust_remote_code: bool = False,
                 auto_class: str = "auto", shift_logits: bool = False, chat_template: bool = True,
                 add_special_tokens: bool = True, special_tokens: list = (), revision: str | None = None):
        require(dtype in DTYPES, "dtype", dtype, f"one of {', '.join(DTYPES)}")
        require(auto_class in AUTO_CLASSES, "auto_class", auto_class, f"one of {', '.join(AUTO_CLASSES)}")
        self.name, self.device = name, resolve_device(device)
        self.shift_logits, self.add_special_tokens = shift_logits, add_special_tokens
        self.notes = []
        options = {"trust_remote_code": trust_remote_code, "revision": revision}
        try:
            config = AutoConfig.from_pretrained(name, **options)
            self.tokenizer = AutoTokenizer.from_pretrained(name, **options)
        except (OSError, ValueError) as error:
            raise UserError(f"hf_model={name}: cannot load its tokenizer: {first_line(error)}") from None
        refuse_causal_lm(config, name, "hf_model")  # before its weights are read
        tok = self.tokenizer
        self.mask_id = mask_id if mask_id is not None else tok.mask_token_id
        if self.mask_id is None:
            raise ConfigError("mask_id", None, f"the tokenizer of {name} has no mask token; pass "
                                                  f"hf.mask_id=<token id> (LLaDA: 126336)")
        self.eos_id = eos_id if eos_id is not None else tok.eos_token_id
        if self.eos_id is None:
            self.notes.append("the tokenizer has no EOS token (pass hf.eos_id to choose one): P(EOS) not reported")
        self.use_chat_template = chat_template and bool(getattr(tok, "chat_template", None))
        if chat_template and not self.use_chat_template:
            self.notes.append("the tokenizer has no chat template: prompts are used as plain text")
        self.model = self._load_model(name, AUTO_CLASSES[auto_class], DTYPES[dtype], options)
        self.vocab_size = self._output_size()
        require(0 <= self.mask_id < self.vocab_size, "mask_id", self.mask_id, f"must be in [0, {self.vocab_size})")
        extra = [t if isinstance(t, int) else tok.convert_tokens_to_ids(t) for t in special_tokens]
        special = set(tok.all_special_ids) | set(extra) | {self.mask_id}
        if self.eos_id is not None:
            special.add(self.eos_id)
        self.special_ids = tuple(sorted(i for i in special if i is not None and 0 <= i < self.vocab_size))

    def _load_model(self, name, classes, dtype, options):
        model = load_with_auto_classes(classes, lambda cls: cls.from_pretrained(name, dtype=dtype, **options),
                                       f"hf_model={name}", f"hf_model={name}")
        return model.to(self.device).eval()

    def _output_size(self) -> int:
        embeddings = self.model.get_output_embeddings() if hasattr(self.model, "get_output_embeddings") else None
        if embeddings is not None and hasattr(embeddings, "weight"):
            return embeddings.weight.shape[0]
        return self.model.config.vocab_size  # remote-code models without the accessor

    def encode(self, text: str) -> list[int]:
        tok = self.tokenizer
        if self.use_chat_template:
            text = tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                           add_generation_prompt=True)
            return tok(text, add_special_tokens=False)["input_ids"]  # the template wrote them already
        return tok(text, add_special_tokens=self.add_special_tokens)["input_ids"]

    def capacity(self, prompts):
        limit = getattr(self.model.config, "max_position_embeddings", None)
        return None if limit is None else limit - max(len(p) for p in prompts)

    @torch.no_grad()
    def mask_log_probs(self, prompts: list[list[int]], n_masks: int) -> torch.Tensor:
        lengths = [len(p) + n_masks for p in prompts]
        width = max(lengths)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.mask_id
        rows = [p + [self.mask_id] * n_masks + [pad] * (width - n) for p, n in zip(prompts, lengths)]
        ids = torch.tensor(rows, dtype=torch.long, device=self.device)
        kwargs = {}
        if min(lengths) < width:  # only padded batches need a mask (some remote code rejects one)
            kwargs["attention_mask"] = (torch.arange(width, device=self.device)[None, :]
                                        < torch.tensor(lengths, device=self.device)[:, None]).long()
        logits = self.model(input_ids=ids, **kwargs).logits
        start = torch.tensor([len(p) for p in prompts], device=self.device)
        # Dream predicts token i at output i-1 (it was adapted from an autoregressive model)
        index = start[:, None] + torch.arange(n_masks, device=self.device)[None, :] - int(self.shift_logits)
        picked = logits.gather(1, index[..., None].expand(-1, -1, logits.shape[-1])).float()
        picked[..., self.mask_id] = float("-inf")  # [MASK] is not a prediction (as in SUBS)
        return picked.log_softmax(dim=-1)


