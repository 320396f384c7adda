"""Any Hugging Face masked (diffusion) LM as the suite's backbone: ``forward(tokens, t) -> (logits, hidden)``.

BERT-style models load with ``AutoModelForMaskedLM``; LLaDA/Dream-style models ship their own code and
load with ``AutoModel`` + ``trust_remote_code`` (their output has ``.logits`` too). ``hidden`` is the
model's last hidden state, what the dependency head reads.

Training modes (``train_mode``): ``full`` fine-tunes every weight; ``frozen`` runs the model without
gradients (only a dependency head trains: the cheap joint decoder for an 8B model); ``lora`` trains
``peft`` LoRA adapters. Time conditioning (schedule=info) adds a zero-initialised time embedding to the
input embeddings, so it needs a model whose forward takes embeddings (``embeds_argument``).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch
from torch import nn

from dlm_lightning.errors import ConfigError, UserError, first_line, require
from dlm_lightning.models.transformer import timestep_embedding

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
AUTO_CLASSES = ("auto", "masked_lm", "model")
TRAIN_MODES = ("full", "frozen", "lora")
LORA_DEFAULTS = {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": None, "adapter_path": None}


class HFBackbone(nn.Module):
    """``name_or_path``: a hub name or local directory (weights loaded unless ``pretrained_weights`` is
    false); or ``config``: a dict with ``model_type`` for a randomly initialised model (its vocabulary
    and length come from the data)."""

    def __init__(self, vocab_size: int, max_seq_len: int, time_conditioning: bool = False,
                 name_or_path: str | None = None, config: dict | None = None, pretrained_weights: bool = True,
                 auto_class: str = "auto", trust_remote_code: bool = False, revision: str | None = None,
                 mask_id: int | None = None, shift_logits: bool = False, dtype: str = "float32",
                 gradient_checkpointing: bool = False, train_mode: str = "full", lora: dict | None = None,
                 embeds_argument: str = "inputs_embeds"):
        super().__init__()
        require((name_or_path is None) != (config is None), "name_or_path", name_or_path,
                "give exactly one of model.name_or_path (a pretrained model) and model.config (a fresh one)")
        require(auto_class in AUTO_CLASSES, "auto_class", auto_class, f"one of {', '.join(AUTO_CLASSES)}")
        require(dtype in DTYPES, "dtype", dtype, f"one of {', '.join(DTYPES)}")
        require(train_mode in TRAIN_MODES, "train_mode", train_mode, f"one of {', '.join(TRAIN_MODES)}")
        self.name = name_or_path or f"fresh {dict(config).get('model_type')} model"
        self.shift_logits, self.train_mode, self.vocab_size = shift_logits, train_mode, vocab_size
        self.embeds_argument = embeds_argument
        options = {"trust_remote_code": trust_remote_code, "revision": revision}
        hf_config = _load_config(name_or_path, config, vocab_size, max_seq_len, options)
        refuse_causal_lm(hf_config, self.name)
        self.model = _load_model(hf_config, name_or_path, pretrained_weights, auto_class, DTYPES[dtype], options)
        self.d_model = _width(hf_config)
        self._fit_vocabulary(vocab_size)
        self._check_length(hf_config, max_seq_len)
        require(mask_id is None or 0 <= mask_id < vocab_size, "mask_id", mask_id, f"must be in [0, {vocab_size})")
        # time conditioning: a zero-initialised embedding of t added to the input embeddings
        self.time_mlp = None
        if time_conditioning:
            accepted = inspect.signature(self.model.forward).parameters
            require(embeds_argument in accepted, "time_conditioning", True,
                    f"the schedule needs a denoiser that reads t, and {self.name}'s forward takes no "
                    f"{embeds_argument!r} to add a time embedding to (set model.embeds_argument to its "
                    f"embeddings argument, or use schedule=uniform/adaptive)")
            # LLaDA's forward requires input_ids even beside embeddings; BERT's refuses both at once
            ids = accepted.get("input_ids")
            self.ids_with_embeds = ids is not None and ids.default is inspect.Parameter.empty
            self.time_mlp = nn.Sequential(nn.Linear(self.d_model, self.d_model), nn.SiLU(),
                                          nn.Linear(self.d_model, self.d_model))
            nn.init.zeros_(self.time_mlp[-1].weight)
            nn.init.zeros_(self.time_mlp[-1].bias)
        if gradient_checkpointing:
            require(getattr(self.model, "supports_gradient_checkpointing", False), "gradient_checkpointing",
                    True, f"{type(self.model).__name__} does not support gradient checkpointing")
            enable = getattr(self.model, "activation_checkpointing_enable", None)  # transformers >= 5.x name
            if enable is not None:
                enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if train_mode == "frozen":
            self.model.requires_grad_(False)
        elif train_mode == "lora":
            self.model = _with_lora(self.model, {**LORA_DEFAULTS, **dict(lora or {})})

    # ---- construction helpers -------------------------------------------------------------------
    def _fit_vocabulary(self, vocab_size: int) -> None:
        """Grows the embeddings for tokens the data's tokenizer added; a larger model vocabulary (LLaDA
        pads its own) is cut to the tokenizer's in ``forward``."""
        size = self.output_size()
        if vocab_size > size:
            self.model.resize_token_embeddings(vocab_size)

    def output_size(self) -> int:
        embeddings = self.model.get_output_embeddings() if hasattr(self.model, "get_output_embeddings") else None
        if embeddings is not None and hasattr(embeddings, "weight"):
            return embeddings.weight.shape[0]
        return self.model.config.vocab_size  # remote-code models without the accessor

    def _check_length(self, hf_config, max_seq_len: int) -> None:
        limit = getattr(hf_config, "max_position_embeddings", None) or getattr(hf_config, "max_sequence_length", None)
        if limit is not None and max_seq_len > limit:
            # a data key, named in full (not under model.)
            raise UserError(f"data.seq_len={max_seq_len} is invalid: must be <= {limit}, the longest sequence "
                            f"{self.name} takes")

    # ---- the backbone contract ------------------------------------------------------------------
    def train(self, mode: bool = True):
        super().train(mode)
        if self.train_mode == "frozen":  # a frozen model keeps its inference behaviour (no dropout)
            self.model.eval()
        return self

    def forward(self, tokens: torch.Tensor, t: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = {"input_ids": tokens}
        if self.time_mlp is not None:
            if t is None:
                raise ValueError("this backbone is time-conditioned: pass t")
            embeds = self.model.get_input_embeddings()(tokens)
            time = self.time_mlp(timestep_embedding(t, self.d_model).to(self.time_mlp[0].weight.dtype))
            inputs = {self.embeds_argument: embeds + time[:, None, :].to(embeds.dtype)}
            if self.ids_with_embeds:
                inputs["input_ids"] = tokens
        with torch.no_grad() if self.train_mode == "frozen" else torch.enable_grad():
            out = self.model(**inputs, output_hidden_states=True, return_dict=True)
        logits, hidden = out.logits[..., : self.vocab_size], out.hidden_states[-1]
        if self.shift_logits:  # Dream predicts token i at output i - 1 (it began as an autoregressive model)
            logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
            hidden = torch.cat([hidden[:, :1], hidden[:, :-1]], dim=1)
        return logits, hidden.float()

    # ---- adapters and export --------------------------------------------------------------------
    def save_adapter(self, directory: str | Path) -> None:
        """LoRA adapters alone (peft's format: adapter_config.json + adapter_model.safetensors)."""
        require(self.train_mode == "lora", "train_mode", self.train_mode, "only train_mode=lora has adapters to save")
        self.model.save_pretrained(str(directory))

    def export(self, directory: Path) -> dict:
        """Saves the model's config (and remote code) to ``directory``; returns the ``model`` config
        node that rebuilds this backbone from there without its original weights."""
        from transformers.dynamic_module_utils import custom_object_save

        base = self.model.get_base_model() if self.train_mode == "lora" else self.model
        base.config.save_pretrained(str(directory))
        if getattr(base, "_auto_class", None) is not None:  # remote code travels with the config
            custom_object_save(base, str(directory), config=base.config)
        # a relative path: the exported model resolves it against its own directory
        return {"name_or_path": Path(directory).name, "config": None, "pretrained_weights": False}


def _load_config(name_or_path, config, vocab_size, max_seq_len, options):
    from transformers import AutoConfig

    if config is not None:
        values = dict(config)
        model_type = values.pop("model_type", None)
        try:
            fresh = AutoConfig.for_model(model_type, **values)
        except ValueError as error:
            raise ConfigError("config.model_type", model_type, first_line(error)) from None
        if "max_position_embeddings" not in values and hasattr(fresh, "max_position_embeddings"):
            fresh.max_position_embeddings = max_seq_len
        if "vocab_size" not in values:
            fresh.vocab_size = vocab_size
        _fit_special_ids(fresh, given=values)
        return fresh
    if name_or_path.startswith(("/", "./", "../", "~")) and not Path(name_or_path).expanduser().exists():
        raise ConfigError("name_or_path", name_or_path, "no such directory")
    try:
        return AutoConfig.from_pretrained(name_or_path, **options)
    except (OSError, ValueError) as error:
        raise UserError(f"model.name_or_path={name_or_path!r}: cannot load its config (a hub name needs the "
                        f"network; code-bearing models need model.trust_remote_code=true): "
                        f"{first_line(error)}") from None


def _fit_special_ids(fresh, given: dict) -> None:
    """A fresh model's default special ids (ModernBERT: pad 50283) name tokens of the architecture's own
    vocabulary: outside a smaller one they are dropped; one given explicitly must lie inside it."""
    for key in [key for key in fresh.to_dict() if key.endswith("_token_id")]:
        value = getattr(fresh, key, None)
        if isinstance(value, int) and not 0 <= value < fresh.vocab_size:
            if key in given:
                raise ConfigError(f"config.{key}", value, f"must be an id in [0, {fresh.vocab_size}), the "
                                  "model's vocabulary, or null")
            setattr(fresh, key, None)


def refuse_causal_lm(hf_config, name: str, key: str = "name_or_path") -> None:
    """A left-to-right LM sees no future tokens: it cannot fill masks anywhere in the sequence."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

    model_type = getattr(hf_config, "model_type", None)
    architectures = tuple(getattr(hf_config, "architectures", None) or ())
    custom = bool(getattr(hf_config, "auto_map", None))
    causal_type = model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    causal_head = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures)
    if (causal_type or causal_head or getattr(hf_config, "is_decoder", False)) and not custom:
        raise ConfigError(key, name, f"is a causal (left-to-right) language model ({model_type}); "
                          "a masked diffusion backbone must attend both ways: give an AutoModelForMaskedLM "
                          "or a diffusion LM with its own code (LLaDA, Dream: model.trust_remote_code=true)")


def _load_model(hf_config, name_or_path, pretrained_weights, auto_class, dtype, options):
    from transformers import AutoModel, AutoModelForMaskedLM

    classes = {"auto": (AutoModelForMaskedLM, AutoModel), "masked_lm": (AutoModelForMaskedLM,),
               "model": (AutoModel,)}[auto_class]
    def load(cls):
        if name_or_path is not None and pretrained_weights:
            return cls.from_pretrained(name_or_path, config=hf_config, dtype=dtype, **options)
        return cls.from_config(hf_config, dtype=dtype, trust_remote_code=options["trust_remote_code"])

    model = load_with_auto_classes(classes, load, f"model={name_or_path or hf_config.model_type}",
                                   f"model.name_or_path={name_or_path!r}")
    if not _has_logits(model):
        raise ConfigError("name_or_path", name_or_path or hf_config.model_type,
                          f"{type(model).__name__} has no language-model head (its output has no logits)")
    return model


def _has_logits(model) -> bool:
    """Bare AutoModel encoders (BertModel) return hidden states only; LM heads expose output embeddings
    or, for remote code, a forward documented to return logits."""
    embeddings = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if embeddings is not None:
        return True
    if getattr(model.config, "auto_map", None):  # remote code: checked on the first forward
        return True
    return False


def _width(hf_config) -> int:
    for key in ("hidden_size", "d_model", "n_embd", "dim"):
        value = getattr(hf_config, key, None)
        if isinstance(value, int):
            return value
    raise ConfigError("config", type(hf_config).__name__, "has no hidden_size/d_model: cannot size the dependency head")


def _with_lora(model, lora: dict):
    try:
        import peft
    except ImportError:
        raise ConfigError("train_mode", "lora", "needs the peft package: pip install 'dlm-lightning[hf]' "
                          "(or pip install peft)") from None
    unknown = sorted(set(lora) - set(LORA_DEFAULTS))
    require(not unknown, f"lora.{unknown[0] if unknown else ''}", None,
            f"unknown key; valid keys: {', '.join(LORA_DEFAULTS)}")
    if lora["adapter_path"] is not None:  # continue from saved adapters
        return peft.PeftModel.from_pretrained(model, str(lora["adapter_path"]), is_trainable=True)
    targets = lora["target_modules"]
    settings = peft.LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                               target_modules=list(targets) if targets is not None else None)
    try:
        return peft.get_peft_model(model, settings)
    except ValueError as error:
        raise ConfigError("lora.target_modules", targets, f"{first_line(error)} (name the attention "
                          f"projections, e.g. [q_proj, v_proj])") from None


def load_with_auto_classes(classes, load, unregistered: str, unreadable: str):
    """``load(cls)`` with the first auto class whose mapping knows the model's config; a config no class
    knows, or files that cannot be read, fail in one line starting with ``unregistered`` or ``unreadable``."""
    for i, cls in enumerate(classes):
        try:
            return load(cls)
        except ValueError as error:  # the config is not registered for this auto class
            if i == len(classes) - 1 or "Unrecognized configuration class" not in str(error):
                raise UserError(f"{unregistered}: cannot load: {first_line(error)}") from None
        except OSError as error:
            raise UserError(f"{unreadable}: cannot load: {first_line(error)}") from None
