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
from omegaconf import DictConfig, OmegaConf

from dlm_lightning.build import build, build_module, config_group
from dlm_lightning.callbacks import SampleWriter
from dlm_lightning.config_types import check_config_types
from dlm_lightning.errors import ConfigError, RunDirError
from dlm_lightning.judge.run_scores import judge_run_samples
from dlm_lightning.run.checkpoint import read_checkpoint
from dlm_lightning.run.init_weights import load_initial_weights
from dlm_lightning.run.layout import (CHECKPOINT_DIR, CONFIG_FILE, ERROR_FILE, LAST_CHECKPOINT, METRICS_FILE,
                                      OVERRIDES_FILE, PROVENANCE_FILE, SAMPLES_FILE, TOKENIZER_DIR)
from dlm_lightning.run.provenance import write_provenance
from dlm_lightning.run.reuse import find_trained_run, training_fingerprint



def new_run(run_dir: Path, cfg: DictConfig, choices: dict[str, str]) -> DictConfig:
    """The resolved config of a new run in ``run_dir`` (refusing a used directory). Nothing is written
    here: ``run_experiment`` claims the directory once every component has been built."""
    if rank_zero_only.rank == 0 and (run_dir / CONFIG_FILE).exists():  # other DDP ranks share rank 0's
        raise RunDirError(f"{run_dir} already holds a run; pass resume={run_dir} to continue it, "
                          f"or choose another directory")
    return new_run_config(cfg, choices)


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
    best = sorted((run_dir / CHECKPOINT_DIR).glob("best-*.ckpt"))
    read_checkpoint(checkpoint, fallback=best[-1] if best else None)  # a damaged file fails here, in one line
    return OmegaConf.load(run_dir / CONFIG_FILE), checkpoint


FINISHED = "finished"


def continued_sweep_job(run_dir: Path, cfg: DictConfig, choices: dict[str, str]):
    """What a job of a sweep re-run into its own directory does: ``FINISHED`` (kept as it is), a resume
    ``(saved config, last checkpoint)``, or None (start it afresh; a failed attempt that left no
    checkpoint is cleared first, since it holds no result)."""
    error_file = run_dir / ERROR_FILE
    if rank_zero_only.rank != 0:  # another DDP rank, started by rank 0's fit: it follows rank 0's decision
        resumed = (run_dir / LAST_CHECKPOINT).exists() and not (run_dir / METRICS_FILE).exists()
        return (OmegaConf.load(run_dir / CONFIG_FILE), run_dir / LAST_CHECKPOINT) if resumed else None
    if (run_dir / METRICS_FILE).exists() and not error_file.exists():
        return FINISHED
    if not (run_dir / CONFIG_FILE).exists():
        error_file.unlink(missing_ok=True)
        return None
    saved = OmegaConf.load(run_dir / CONFIG_FILE)
    if _plain(saved) != _plain(new_run_config(cfg, choices)):
        raise RunDirError(f"{run_dir} holds a job with another config than this sweep's; re-run the sweep "
                          f"with its original overrides, or into a new hydra.sweep.dir")
    if (run_dir / LAST_CHECKPOINT).exists():
        error_file.unlink(missing_ok=True)
        return saved, run_dir / LAST_CHECKPOINT
    for path in run_dir.iterdir():  # claimed, then failed before any checkpoint: nothing worth keeping
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return None


def new_run_config(cfg: DictConfig, choices: dict[str, str]) -> DictConfig:
    resolved = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    resolved.choices = choices
    return resolved


def _plain(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)


def build_callbacks(cfg: DictConfig, run_dir: Path) -> list:
    callbacks = []
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is None:
            continue
        writes_checkpoints = name in ("checkpoint", "last_checkpoint")
        extra = {"dirpath": str(run_dir / CHECKPOINT_DIR)} if writes_checkpoints else {}
        with config_group(f"callbacks.{name}", node):
            callbacks.append(instantiate(node, **extra))
    # samples.jsonl is part of every run's contract, so its writer is not optional
    return [*callbacks, SampleWriter(run_dir)]


def check_trainer(trainer_cfg: DictConfig) -> None:
    """Trainer values Lightning would take silently or fail on deep inside fit: max_epochs=0 trains
    nothing (an untrained model would be tested), -1 for both limits trains forever, a negative clip
    value turns clipping off, and accumulate_grad_batches=0 divides by zero."""
    limits = {key: trainer_cfg.get(key) for key in ("max_epochs", "max_steps")}
    for key, value in limits.items():
        is_limit = isinstance(value, int) and not isinstance(value, bool) and (value >= 1 or value == -1)
        if value is not None and not is_limit:
            raise ConfigError(f"trainer.{key}", value, "must be an integer >= 1, or -1 for no limit")
    if limits["max_epochs"] == -1 and limits["max_steps"] in (None, -1):
        raise ConfigError("trainer.max_epochs", -1, "no limit needs trainer.max_steps >= 1, or training never ends")
    accumulate = trainer_cfg.get("accumulate_grad_batches", 1)
    if not (isinstance(accumulate, int) and not isinstance(accumulate, bool) and accumulate >= 1):
        raise ConfigError("trainer.accumulate_grad_batches", accumulate, "must be an integer >= 1")
    clip = trainer_cfg.get("gradient_clip_val")
    if clip is not None and not (isinstance(clip, (int, float)) and not isinstance(clip, bool) and clip >= 0):
        raise ConfigError("trainer.gradient_clip_val", clip, "must be a number >= 0 (0 or null: no clipping)")


def build_loggers(cfg: DictConfig, run_dir: Path) -> list:
    """The ``logger`` group's loggers (TensorBoard by default), each writing inside the run directory."""
    loggers = []
    for name, node in (cfg.get("logger") or {}).items():
        if node is not None:
            with config_group(f"logger.{name}", node):
                loggers.append(instantiate(node, save_dir=str(run_dir)))
    return loggers


def claim_run_dir(cfg: DictConfig, run_dir: Path, info, overrides: list[str] | None) -> None:
    """Rank 0 writes what makes ``run_dir`` a run: the resolved config, the tokenizer, provenance."""
    if rank_zero_only.rank != 0:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / CONFIG_FILE).exists():
        OmegaConf.save(cfg, run_dir / CONFIG_FILE)
        write_provenance(run_dir / PROVENANCE_FILE)
        if overrides is not None:
            OmegaConf.save(OmegaConf.create(list(overrides)), run_dir / OVERRIDES_FILE)
    if not (run_dir / TOKENIZER_DIR).exists():  # also restores a deleted one on resume
        info.tokenizer.save_pretrained(str(run_dir / TOKENIZER_DIR))


def run_experiment(cfg: DictConfig, run_dir: Path, checkpoint: Path | None = None,
                   overrides: list[str] | None = None, on_claim=None) -> dict:
    """Fits, tests and samples; returns the final metrics (also written to ``metrics.json``).

    Every component is built (and so validated) before the run directory is claimed, so a refused
    config leaves nothing behind. ``on_claim(run_dir)`` runs right after the claim.
    """
    check_config_types(cfg)
    check_trainer(cfg.trainer)
    started = time.perf_counter()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build(cfg, "data")
    info = datamodule.data_info()
    check_train_split(cfg, datamodule)
    module = build_module(cfg, info)
    if cfg.get("init_from") and checkpoint is None:  # a resumed run's own checkpoint holds these weights already
        load_initial_weights(module, cfg.init_from)
    judge = build(cfg, "judge") if cfg.get("judge") is not None else None  # a bad judge fails before training
    loggers = build_loggers(cfg, run_dir)
    trainer = build(cfg, "trainer", logger=loggers or False, callbacks=build_callbacks(cfg, run_dir),
                    default_root_dir=str(run_dir))
    claim_run_dir(cfg, run_dir, info, overrides)
    if on_claim is not None:
        on_claim(run_dir)
    if trainer.is_global_zero and checkpoint is None:
        for logger in trainer.loggers:  # now, so that hparams.yaml holds them; with the final metrics at the end
            logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    fingerprint = training_fingerprint(cfg)
    trained_in = find_trained_run(run_dir, fingerprint) if cfg.get("reuse_training") and checkpoint is None else None
    if trained_in is None:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(checkpoint) if checkpoint else None)
        global_step = trainer.global_step
        if not any(key.startswith("val/") for key in trainer.callback_metrics):
            # resumed after training ended (killed before metrics.json): validate the final weights again
            trainer.validate(module, datamodule=datamodule, verbose=False)
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
    if judge is not None and trainer.is_global_zero:
        metrics.update(judge_run_samples(judge, info, run_dir / SAMPLES_FILE, datamodule))
    metrics.update({"schedule": cfg.choices.get("schedule"), "decoder": cfg.choices.get("decoder"),
                    "objective": cfg.choices.get("objective", "diffusion"),
                    "seed": cfg.seed, "global_step": global_step, "training_fingerprint": fingerprint,
                    "seconds": round(time.perf_counter() - started, 1)})
    if trained_in is not None:
        metrics["trained_in"] = str(trained_in)
    if trainer.is_global_zero:
        _log_final(trainer, cfg, metrics)
        (run_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics


def check_train_split(cfg: DictConfig, datamodule) -> None:
    """A training split smaller than one batch gives 0 steps (drop_last): an untrained model would be tested."""
    sizes, batch = getattr(datamodule, "sizes", None), getattr(datamodule, "batch_size", None)
    if sizes is not None and batch is not None and sizes["train"] < batch:
        raise ConfigError("data.train_size", sizes["train"], f"must be >= data.batch_size={batch} "
                          f"(incomplete batches are dropped, so a smaller split trains nothing)")


def _scalars(values: dict, *prefixes: str) -> dict:
    out = {}
    for key, value in values.items():
        if key.startswith(prefixes):
            number = float(value.item() if isinstance(value, torch.Tensor) else value)
            out[key] = number if math.isfinite(number) else str(number)
    return out


def _log_final(trainer: L.Trainer, cfg: DictConfig, metrics: dict) -> None:
    """Each logger gets the run's hyperparameters together with its final metrics (TensorBoard's HParams
    tab). The loggers flatten the nested config themselves."""
    # under their own tags: the HParams tab reads them as scalars, which must not join the val/ curves
    numbers = {f"final/{k}": v for k, v in metrics.items() if isinstance(v, float) and "/" in k}
    hparams = OmegaConf.to_container(cfg, resolve=True)
    for logger in trainer.loggers:
        logger.log_hyperparams(hparams, metrics=numbers) if _takes_metrics(logger) else logger.log_hyperparams(hparams)
        logger.finalize("success")


def _takes_metrics(logger) -> bool:
    import inspect

    return "metrics" in inspect.signature(logger.log_hyperparams).parameters
