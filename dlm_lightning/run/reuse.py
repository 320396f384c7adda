"""Reusing a finished run's training (``reuse_training=true``).

A decoder changes how answers are sampled, never what is trained, so the jobs of a sweep that differ
only in their decoder would train identical weights. With reuse on, a job first looks for a finished
run beside it (the same parent directory: the other jobs of its sweep) whose training fingerprint is
its own, and evaluates that run's last checkpoint instead of training again.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

import dlm_lightning
from dlm_lightning.run.layout import LAST_CHECKPOINT, METRICS_FILE

SAMPLING_ONLY = ("decoder", "judge")  # config groups that do not change the trained weights
NOT_TRAINING = ("resume", "reuse_training")


def training_fingerprint(cfg: DictConfig) -> str:
    """A hash of everything that determines the trained weights: the config without the decoder, the
    suite's source code and the torch version (a checkpoint from older code is never reused)."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    for key in SAMPLING_ONLY + NOT_TRAINING:
        plain.pop(key, None)
    plain["choices"] = {k: v for k, v in (plain.get("choices") or {}).items() if k not in SAMPLING_ONLY}
    plain["code"] = _code_digest()
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()


def find_trained_run(run_dir: Path, fingerprint: str) -> Path | None:
    """The first finished run beside ``run_dir`` that trained with ``fingerprint`` itself."""
    for metrics_file in sorted(run_dir.parent.glob(f"*/{METRICS_FILE}")):
        candidate = metrics_file.parent
        if candidate == run_dir or not (candidate / LAST_CHECKPOINT).exists():
            continue
        metrics = json.loads(metrics_file.read_text())
        if metrics.get("training_fingerprint") == fingerprint and "trained_in" not in metrics:
            return candidate
    return None


@functools.cache
def _code_digest() -> str:
    digest = hashlib.sha256(torch.__version__.encode())
    package = Path(dlm_lightning.__file__).parent
    for source in sorted(package.rglob("*.py")):
        digest.update(str(source.relative_to(package)).encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()
