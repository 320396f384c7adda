"""A run's model in Hugging Face format: ``save_pretrained`` / ``from_pretrained``, loadable in one line.

An exported directory holds ``model.safetensors`` (backbone, dependency head, schedule parameters and
the answer-token counts behind the unigram), ``config.json`` (the run's resolved config and its data
facts), the tokenizer, ``modeling_dlm.py`` (so ``AutoModel.from_pretrained(dir, trust_remote_code=True)``
finds these classes), ``backbone/`` (the config and code of a Hugging Face backbone) and ``README.md``
(a model card with the config and metrics). Loading needs neither the training data nor its DataModule.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from omegaconf import OmegaConf
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput

from dlm_lightning.data.portable import info_from_dict, info_to_dict
from dlm_lightning.errors import UserError

WEIGHTS = "model.safetensors"
SHIM = "modeling_dlm.py"
COUNTS_KEY = "data.token_counts"  # the unigram's counts, stored beside the weights


class DLMConfig(PretrainedConfig):
    model_type = "dlm-lightning"

    def __init__(self, suite: dict | None = None, data: dict | None = None, entity_vocab: dict | None = None,
                 metrics: dict | None = None, **kwargs):
        self.suite, self.data, self.entity_vocab = suite or {}, data or {}, entity_vocab or {}
        self.metrics = metrics or {}
        super().__init__(**kwargs)


class _Vocabulary:
    """Stands in for the tokenizer where the module only reads entity words' ids."""

    def __init__(self, vocab: dict[str, int]):
        self.vocab = vocab

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab)


class DLMForMaskedDiffusion(PreTrainedModel):
    """``self.diffusion`` is the suite's MaskedDiffusionLM (denoiser, schedule, decoder, head)."""

    config_class = DLMConfig
    base_model_prefix = "diffusion"

    def __init__(self, config: DLMConfig, token_counts: torch.Tensor | None = None, tokenizer=None):
        super().__init__(config)
        from dlm_lightning.build import build_module

        facts = dict(config.data)
        vocab = int(facts["vocab_size"])
        facts["token_counts"] = token_counts if token_counts is not None else torch.zeros(vocab, dtype=torch.float64)
        info = info_from_dict(facts, tokenizer if tokenizer is not None else _Vocabulary(config.entity_vocab))
        self.diffusion = build_module(OmegaConf.create(config.suite), info)
        self.diffusion.eval()

    @property
    def info(self):
        return self.diffusion.info

    def forward(self, input_ids: torch.Tensor, t: torch.Tensor | None = None, **_) -> MaskedLMOutput:
        """SUBS log-probabilities (as ``logits``) and the backbone's last hidden states; t defaults to 1."""
        if t is None:
            t = torch.ones(input_ids.shape[0], device=input_ids.device)
        out = self.diffusion.denoiser(input_ids, t)
        return MaskedLMOutput(logits=out.log_probs, hidden_states=(out.hidden,))

    def decode_context(self):
        return self.diffusion.decode_context()

    # ---- construction from a run ----------------------------------------------------------------
    @classmethod
    def from_run(cls, run: str | Path, checkpoint: str = "last") -> "DLMForMaskedDiffusion":
        from dlm_lightning.run.load import load_run
        from dlm_lightning.run.layout import METRICS_FILE

        loaded = load_run(run, checkpoint)
        metrics_file = loaded.run_dir / METRICS_FILE
        metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
        suite = OmegaConf.to_container(loaded.cfg, resolve=True)
        info = loaded.info
        facts = {k: v for k, v in info_to_dict(info).items() if k != "token_counts"}
        words = {w for entity in info.entities for w in entity}
        entity_vocab = {w: i for w, i in info.tokenizer.get_vocab().items() if w in words}
        config = DLMConfig(suite=suite, data=facts, entity_vocab=entity_vocab, metrics=metrics)
        model = cls(config, info.token_counts, info.tokenizer)
        model.diffusion.load_state_dict(loaded.module.state_dict())
        model.source_run = str(loaded.run_dir)
        return model

    # ---- Hugging Face format ----------------------------------------------------------------------
    def save_pretrained(self, save_directory: str | Path, push_to_hub: bool = False, **kwargs) -> None:
        from safetensors.torch import save_file

        if push_to_hub:
            raise UserError("push_to_hub: export locally, then upload the directory with "
                            "huggingface_hub.upload_folder (docs/pretrained.md)")
        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        suite = json.loads(json.dumps(self.config.suite))
        backbone = self.diffusion.denoiser.backbone
        if hasattr(backbone, "export"):  # a backbone with its own config files (Hugging Face models)
            suite["model"].update(backbone.export(out / "backbone"))
        self.config.suite = suite
        self.config.auto_map = {"AutoConfig": f"{SHIM[:-3]}.DLMConfig", "AutoModel": f"{SHIM[:-3]}.DLMForMaskedDiffusion"}
        self.config.architectures = [type(self).__name__]
        self.config.save_pretrained(str(out))
        # tied weights (BERT's decoder and embeddings) are stored once, as safetensors requires
        state, seen = {}, {}
        for name, tensor in self.diffusion.state_dict().items():
            key = (tensor.data_ptr(), tensor.shape, tensor.stride()) if tensor.numel() else None
            if key is not None and key in seen:
                continue
            seen[key] = name
            state[name] = tensor.detach().contiguous().cpu()
        state[COUNTS_KEY] = self.info.token_counts.double().cpu()
        save_file(state, str(out / WEIGHTS), metadata={"format": "pt"})
        if not isinstance(self.info.tokenizer, _Vocabulary):
            self.info.tokenizer.save_pretrained(str(out))
        (out / SHIM).write_text('"""Loads a dlm-lightning export (pip install dlm-lightning)."""\n'
                                "from dlm_lightning.export import DLMConfig, DLMForMaskedDiffusion  # noqa: F401\n")
        (out / "README.md").write_text(model_card(self.config, getattr(self, "source_run", None)))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, *args, config=None,
                        **kwargs) -> "DLMForMaskedDiffusion":
        from safetensors.torch import load_file
        from transformers import AutoTokenizer

        directory = Path(pretrained_model_name_or_path)
        if not (directory / WEIGHTS).is_file():
            raise UserError(f"{directory}: no {WEIGHTS} there, so it is not an exported dlm-lightning model")
        config = config if isinstance(config, DLMConfig) else DLMConfig.from_pretrained(str(directory))
        model_node = config.suite.get("model", {})
        relative = model_node.get("name_or_path")
        if isinstance(relative, str) and (directory / relative).is_dir():
            model_node["name_or_path"] = str(directory / relative)  # the exported backbone files
        state = load_file(str(directory / WEIGHTS))
        counts = state.pop(COUNTS_KEY)
        # the directory's config names modeling_dlm.py (this module's classes), which transformers
        # would otherwise ask about interactively before reading the tokenizer
        tokenizer = (AutoTokenizer.from_pretrained(str(directory), trust_remote_code=True)
                     if (directory / "tokenizer_config.json").exists() else None)
        model = cls(config, counts, tokenizer)
        missing, unexpected = model.diffusion.load_state_dict(state, strict=False)
        untied = [k for k in missing if not _is_tied(model.diffusion, k, state)]
        if untied or unexpected:
            raise UserError(f"{directory}: weights do not match the model (missing {untied[:3]}, "
                            f"unexpected {unexpected[:3]})")
        return model.eval()


def _is_tied(module: torch.nn.Module, name: str, state: dict) -> bool:
    """A missing entry is fine when it shares storage with a loaded one (tied embeddings)."""
    tensors = module.state_dict(keep_vars=True)
    target = tensors[name]
    return any(other != name and tensors[other].data_ptr() == target.data_ptr() for other in state if other in tensors)


def model_card(config: DLMConfig, source_run: str | None) -> str:
    suite, metrics = config.suite, config.metrics
    choices = suite.get("choices", {})
    lines = ["---", "library_name: dlm-lightning", "tags: [masked-diffusion, diffusion-language-model]", "---", "",
             "# A masked diffusion language model trained with dlm-lightning", "",
             f"Schedule `{choices.get('schedule')}`, decoder `{choices.get('decoder')}`, "
             f"model `{choices.get('model')}`, data `{choices.get('data')}`"
             + (f", head `{choices.get('head')}`" if choices.get("head") else "") + ".", "",
             "```python", "from transformers import AutoModel, AutoTokenizer",
             "model = AutoModel.from_pretrained(path, trust_remote_code=True)  # needs pip install dlm-lightning",
             "tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)", "```", "",
             "Generate with `python -m experiments.generate model_path=<this directory> prompt=\"...\"`.", "",
             "## Metrics", ""]
    if metrics:
        lines += ["| metric | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in sorted(metrics.items())]
    else:
        lines.append("(none recorded)")
    lines += ["", "## Training config", "", "```yaml", OmegaConf.to_yaml(OmegaConf.create(suite)).rstrip(), "```"]
    if source_run:
        lines += ["", f"Exported from run directory `{source_run}`."]
    return "\n".join(lines) + "\n"


def export_run(run: str | Path, out_dir: str | Path, checkpoint: str = "last") -> Path:
    model = DLMForMaskedDiffusion.from_run(run, checkpoint)
    model.save_pretrained(out_dir)
    return Path(out_dir)
