"""Checkpoint signatures: refuse, in one line, a checkpoint made for other data or another model shape."""

from __future__ import annotations

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
