"""One probe from a config: open the model, read the prompts, choose the unigram, probe, write outputs."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from dlm_lightning.build import build
from dlm_lightning.errors import RunDirError, require
from dlm_lightning.probe.compare import COMPARE_MD, write_comparison
from dlm_lightning.probe.compute import run_probe
from dlm_lightning.probe.report import build_report
from dlm_lightning.probe.source import ProbeModel, resolve_device
from dlm_lightning.probe.unigram import read_texts, unigram_from_texts
from dlm_lightning.probe.writers import JSON_FILE, write_all


def open_model(cfg: DictConfig) -> ProbeModel:
    """``run=`` builds the ``suite`` node, ``hf_model=`` the ``hf`` node (each names its class by _target_)."""
    given = {key: cfg.get(key) for key in ("run", "hf_model") if cfg.get(key)}
    require(len(given) == 1, "run/hf_model", given or None,
            "give exactly one: run=<run dir or checkpoint> or hf_model=<hub name or local path>")
    device = str(resolve_device(cfg.device))  # a top-level key, checked here rather than in each node
    if "run" in given:
        return build(cfg, "suite", run=str(given["run"]), device=device)
    return build(cfg, "hf", name=str(given["hf_model"]), device=device)


def choose_unigram(cfg: DictConfig, model: ProbeModel):
    """A given text source wins; otherwise the model's own training data, when known; otherwise none."""
    source = cfg.unigram
    if source.get("path"):
        texts = read_texts(source.path, source.get("field"), source.get("limit"))
        description = f"{source.path} ({len(texts)} texts, tokenised with the model's tokenizer, add-one smoothed)"
        return unigram_from_texts(texts, model.tokenizer, model.vocab_size, model.mask_id), description
    return model.training_unigram() or (None, None)


def probe(cfg: DictConfig, out_dir: Path) -> dict:
    """Runs the probe described by ``cfg`` and writes its outputs into the new directory ``out_dir``."""
    if (out_dir / JSON_FILE).exists() or (out_dir / COMPARE_MD).exists():
        raise RunDirError(f"{out_dir} already holds a probe; choose another directory")
    if cfg.get("compare"):  # no new probe: saved ones side by side
        write_comparison([str(d) for d in cfg.compare], cfg.get("compare_labels"), out_dir)
        return {}
    prompt_source = build(cfg, "prompts")
    prompts = prompt_source()  # before the model: a bad prompt file fails fast
    model = open_model(cfg)
    unigram, unigram_description = choose_unigram(cfg, model)
    result = run_probe(model, prompts, cfg.n_masks, cfg.top_k, cfg.batch_size, unigram, cfg.exclude_special)
    settings = {"label": cfg.get("label"), "source": "suite" if cfg.get("run") else "hf",
                "prompt_source": prompt_source.describe(), "n_masks_requested": cfg.n_masks, "top_k": cfg.top_k,
                "exclude_special": cfg.exclude_special, "unigram_source": unigram_description}
    report = build_report(result, model, settings)
    write_all(report, out_dir, cfg.table_prompts, cfg.table_positions, cfg.tensorboard)
    return report
