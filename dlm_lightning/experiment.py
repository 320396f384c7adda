"""One experiment: train, evaluate and sample in a run directory of its own.

Run directory layout: ``config.yaml`` (resolved, with the chosen option of every group under
``choices``), ``tokenizer/``, ``checkpoints/`` (last and best), ``tensorboard/``, ``metrics.json``,
``samples.jsonl``. A directory is never reused: resuming continues an unfinished run in place.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only
from hydra.utils import instantiate
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from dlm_lightning.build import build, build_module, config_group
from dlm_lightning.errors import ConfigError, RunDirError
from dlm_lightning.judge.run_scores import judge_run_samples
from dlm_lightning.run_layout import CHECKPOINT_DIR, CONFIG_FILE, LAST_CHECKPOINT, METRICS_FILE, SAMPLES_FILE
from dlm_lightning.reuse import find_trained_run, training_fingerprint



def new_run(run_dir: Path, cfg: DictConfig, choices: dict[str, str]) -> DictConfig:
    """Claims ``run_dir`` for a new run (rank 0 writes the resolved config); refuses a used one."""
    if rank_zero_only.rank == 0:
        if (run_dir / CONFIG_FILE).exists():
            raise RunDirError(f"{run_dir} already holds a run; pass resume={run_dir} to continue it, "
                              f"or choose another directory")
        run_dir.mkdir(parents=True, exist_ok=True)
    resolved = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    resolved.choices = choices
    if rank_zero_only.rank == 0:
        OmegaConf.save(resolved, run_dir / CONFIG_FILE)
    return resolved


def resumed_run(run_dir: Path, extra_overrides: list[str]) -> tuple[DictConfig, Path]:
    """The saved config and last checkpoint of an unfinished run."""
    if extra_overrides:
        raise RunDirError(f"resume takes no other overrides (got {' '.join(extra_overrides)}): "
                          f"a resumed run continues with its saved config")
    if not (run_dir / CONFIG_FILE).exists():
        raise RunDirError(f"resume={run_dir}: no {CONFIG_FILE} there, so it is not a run directory")
    if (run_dir / METRICS_FILE).exists():
        raise RunDirError(f"resume={run_dir}: that run already finished ({METRICS_FILE} exists); start a new run")
    checkpoint = run_dir / LAST_CHECKPOINT
    if not checkpoint.exists():
        raise RunDirError(f"resume={run_dir}: no {LAST_CHECKPOINT} (the run stopped before its first "
                          f"checkpoint); start a new run")
    return OmegaConf.load(run_dir / CONFIG_FILE), checkpoint


def build_callbacks(cfg: DictConfig, run_dir: Path) -> list:
    callbacks = []
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is None:
            continue
        writes_checkpoints = name in ("checkpoint", "last_checkpoint")
        extra = {"dirpath": str(run_dir / CHECKPOINT_DIR)} if writes_checkpoints else {}
        with config_group(f"callbacks.{name}", node):
            callbacks.append(instantiate(node, **extra))
    return callbacks


def check_training_length(trainer_cfg: DictConfig) -> None:
    """Lightning takes max_epochs=0 as "train nothing" and would then test an untrained model, and
    -1 for both limits as "train forever": neither is a run anyone means."""
    limits = {key: trainer_cfg.get(key) for key in ("max_epochs", "max_steps")}
    for key, value in limits.items():
        is_limit = isinstance(value, int) and not isinstance(value, bool) and (value >= 1 or value == -1)
        if value is not None and not is_limit:
            raise ConfigError(f"trainer.{key}", value, "must be an integer >= 1, or -1 for no limit")
    if limits["max_epochs"] == -1 and limits["max_steps"] in (None, -1):
        raise ConfigError("trainer.max_epochs", -1, "no limit needs trainer.max_steps >= 1, or training never ends")


def run_experiment(cfg: DictConfig, run_dir: Path, checkpoint: Path | None = None) -> dict:
    """Fits, tests and samples; returns the final metrics (also written to ``metrics.json``)."""
    check_training_length(cfg.trainer)
    started = time.perf_counter()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build(cfg, "data")
    info = datamodule.data_info()
    module = build_module(cfg, info)
    judge = build(cfg, "judge") if cfg.get("judge") is not None else None  # a bad judge fails before training
    logger = TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version="", default_hp_metric=False)
    trainer = build(cfg, "trainer", logger=logger, callbacks=build_callbacks(cfg, run_dir),
                    default_root_dir=str(run_dir))
    if trainer.is_global_zero and checkpoint is None:
        info.tokenizer.save_pretrained(str(run_dir / "tokenizer"))
        logger.log_hyperparams(_flat_hparams(cfg))

    fingerprint = training_fingerprint(cfg)
    trained_in = find_trained_run(run_dir, fingerprint) if cfg.get("reuse_training") and checkpoint is None else None
    if trained_in is None:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(checkpoint) if checkpoint else None)
        global_step = trainer.global_step
    else:  # the same weights were trained beside this run: evaluate them with this run's decoder
        source = trained_in / LAST_CHECKPOINT
        trainer.validate(module, datamodule=datamodule, ckpt_path=str(source), verbose=False)
        global_step = json.loads((trained_in / METRICS_FILE).read_text())["global_step"]
        if trainer.is_global_zero:
            (run_dir / LAST_CHECKPOINT).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, run_dir / LAST_CHECKPOINT)  # keeps this run directory self-contained
    metrics = _scalars(trainer.callback_metrics, "val/")
    trainer.test(module, datamodule=datamodule, verbose=False)
    metrics.update(_scalars(trainer.callback_metrics, "test/", "sample/"))
    _write_samples(trainer, module.records, run_dir)
    if judge is not None and trainer.is_global_zero:
        metrics.update(judge_run_samples(judge, info, run_dir / SAMPLES_FILE, datamodule))
    metrics.update({"schedule": cfg.choices.get("schedule"), "decoder": cfg.choices.get("decoder"),
                    "objective": cfg.choices.get("objective", "diffusion"),
                    "seed": cfg.seed, "global_step": global_step, "training_fingerprint": fingerprint,
                    "seconds": round(time.perf_counter() - started, 1)})
    if trained_in is not None:
        metrics["trained_in"] = str(trained_in)
    if trainer.is_global_zero:
        (run_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics


def _scalars(values: dict, *prefixes: str) -> dict:
    out = {}
    for key, value in values.items():
        if key.startswith(prefixes):
            number = float(value.item() if isinstance(value, torch.Tensor) else value)
            out[key] = number if math.isfinite(number) else str(number)
    return out


def _flat_hparams(cfg: DictConfig) -> dict:
    flat = {}

    def walk(node, prefix):
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(value, f"{name}.")
            else:
                flat[name] = value if isinstance(value, (int, float, str, bool)) else str(value)

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return flat


def _write_samples(trainer: L.Trainer, records: list[dict], run_dir: Path) -> None:
    """Each rank writes its part; rank 0 merges them in index order into samples.jsonl."""
    part = run_dir / f"samples.rank{trainer.global_rank}.jsonl"
    part.write_text("".join(json.dumps(r) + "\n" for r in records))
    trainer.strategy.barrier("samples")
    if trainer.is_global_zero:
        parts = sorted(run_dir.glob("samples.rank*.jsonl"))
        merged = [json.loads(line) for p in parts for line in p.read_text().splitlines()]
        merged.sort(key=lambda r: r["index"])
        (run_dir / SAMPLES_FILE).write_text("".join(json.dumps(r) + "\n" for r in merged))
        for p in parts:
            p.unlink()
