"""``init_from``: start a new run from another run's trained weights (fine-tuning a suite model, e.g. at a
longer answer length). Optimizer, step count and data are the new run's own."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from dlm_lightning.errors import CheckpointMismatch, ConfigError
from dlm_lightning.run.checkpoint import check_signature, model_signature, read_checkpoint
from dlm_lightning.run.layout import LAST_CHECKPOINT

# the data facts the weights depend on; sequence and prompt lengths may change (rotary positions carry over)
VOCABULARY_KEYS = ("vocab_size", "mask_id", "vocab_hash")


def initial_checkpoint(source: str) -> Path:
    """The checkpoint ``init_from`` names: a run directory (its last checkpoint) or a .ckpt file."""
    path = Path(source)
    checkpoint = path / LAST_CHECKPOINT if path.is_dir() else path
    if not checkpoint.is_file():
        raise ConfigError("init_from", source, f"needs a run directory holding {LAST_CHECKPOINT} or a .ckpt file")
    return checkpoint


def load_initial_weights(module: nn.Module, source: str) -> None:
    """Loads the weights of ``source`` into ``module`` (a suite LightningModule, with its data ``info``); a
    checkpoint of another vocabulary or model shape fails in one line naming ``init_from``."""
    path, data = initial_checkpoint(source), module.info.signature()
    try:
        checkpoint = read_checkpoint(path)
        saved = checkpoint["dlm_signature"]
        check_signature({"data": {key: saved["data"].get(key) for key in VOCABULARY_KEYS}, "model": saved["model"]},
                        {"data": {key: data[key] for key in VOCABULARY_KEYS}, "model": model_signature(module)})
    except CheckpointMismatch as error:
        raise CheckpointMismatch(f"init_from={source}: {error}") from None
    module.load_state_dict(checkpoint["state_dict"])
