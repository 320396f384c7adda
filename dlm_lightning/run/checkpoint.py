"""Checkpoint signatures: refuse, in one line, a checkpoint made for other data or another model shape."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from dlm_lightning.errors import CheckpointMismatch


def model_signature(module: nn.Module) -> dict[str, list[int]]:
    return {name: list(t.shape) for name, t in module.state_dict().items()}


def check_signature(saved: dict | None, current: dict) -> None:
    if saved is None:
        raise CheckpointMismatch("checkpoint has no dlm-lightning signature: it was not written by this suite")
    for key, value in current["data"].items():
        if saved["data"].get(key) != value:
            raise CheckpointMismatch(
                f"checkpoint data mismatch: it was trained with {key}={saved['data'].get(key)!r}, "
                f"this run has {key}={value!r}")
    saved_model, model = saved["model"], current["model"]
    for name in sorted(set(saved_model) | set(model)):
        if saved_model.get(name) != model.get(name):
            raise CheckpointMismatch(
                f"checkpoint model mismatch at {name}: checkpoint has shape {saved_model.get(name)}, "
                f"this model has {model.get(name)} (None = absent)")


def read_checkpoint(path: Path, fallback: Path | None = None) -> dict:
    """A suite checkpoint's contents; an empty, truncated, unreadable or foreign file fails in one line,
    naming ``fallback`` (e.g. the run's best checkpoint) when that one reads."""
    problem = _checkpoint_problem(path)
    if problem is None:
        return torch.load(path, map_location="cpu", weights_only=True)
    advice = ""
    if fallback is not None and fallback != path and _checkpoint_problem(fallback) is None:
        advice = f"; {fallback} reads fine and can be used instead"
    raise CheckpointMismatch(f"checkpoint {path} {problem}{advice}")


def _checkpoint_problem(path: Path) -> str | None:
    if not path.is_file():
        return "does not exist"
    if path.stat().st_size == 0:
        return "is empty (0 bytes): the run was probably killed while writing it"
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for truncated or foreign bytes
        return f"cannot be read ({type(error).__name__}): truncated, or not a PyTorch checkpoint"
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "dlm_signature" not in checkpoint:
        return "is not a dlm-lightning checkpoint (no state_dict and signature)"
    return None
