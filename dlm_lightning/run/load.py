"""Loading a finished (or checkpointed) run of this suite for analysis: its config, data info and module.

A run is named by its directory (``config.yaml`` + ``checkpoints/``) or by one of its checkpoint
files (``<run>/checkpoints/*.ckpt``). The module is rebuilt from the saved config exactly as training
built it, then the checkpoint's weights are loaded after its signature is checked. The data facts the
model needs travel in the checkpoint (with ``<run>/tokenizer``), so the data module is built only when
``LoadedRun.datamodule`` is read (older checkpoints without them rebuild it at once).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from dlm_lightning.build import build, build_module
from dlm_lightning.run.checkpoint import read_checkpoint
from dlm_lightning.data.info import DataInfo
from dlm_lightning.data.portable import info_from_dict
from dlm_lightning.errors import RunDirError, require
from dlm_lightning.run.layout import CHECKPOINT_DIR, CONFIG_FILE, LAST_CHECKPOINT, TOKENIZER_DIR

CHECKPOINTS = ("last", "best")


@dataclass
class LoadedRun:
    run_dir: Path
    checkpoint: Path
    cfg: DictConfig
    info: DataInfo
    module: torch.nn.Module  # the MaskedDiffusionLM, in eval mode
    built_datamodule: object = field(default=None, repr=False)

    @property
    def datamodule(self):
        """The run's DataModule (its splits, e.g. ``datamodule.dataset("test")``), built on first use."""
        if self.built_datamodule is None:
            self.built_datamodule = build(self.cfg, "data")
            self.built_datamodule.data_info()  # settles split sizes, as when the run trained
        return self.built_datamodule

    @property
    def schedule_name(self) -> str | None:
        return (self.cfg.get("choices") or {}).get("schedule")


def find_checkpoint(path: Path, which: str = "last") -> tuple[Path, Path]:
    """(run directory, checkpoint file) for a run directory or a checkpoint file inside one."""
    require(which in CHECKPOINTS, "checkpoint", which, f"one of {', '.join(CHECKPOINTS)}")
    path = Path(path)
    if not path.exists():
        raise RunDirError(f"run={path}: no such file or directory")
    if path.is_file():
        run_dir = path.parent.parent  # <run>/checkpoints/<file>.ckpt
        if not (run_dir / CONFIG_FILE).exists():
            raise RunDirError(f"run={path}: a checkpoint must sit in <run dir>/checkpoints/ next to "
                              f"<run dir>/{CONFIG_FILE}; none found at {run_dir / CONFIG_FILE}")
        return run_dir, path
    if not (path / CONFIG_FILE).exists():
        raise RunDirError(f"run={path}: no {CONFIG_FILE} there, so it is not a run directory")
    folder = path / CHECKPOINT_DIR
    candidates = [path / LAST_CHECKPOINT] if which == "last" else sorted(folder.glob("best-*.ckpt"))
    candidates = [c for c in candidates if c.exists()]
    if not candidates:
        raise RunDirError(f"run={path}: no {which} checkpoint in {folder}")
    if len(candidates) > 1:  # several best-* files (save_top_k > 1, or an older run): ask the run itself
        recorded = _recorded_best(path / LAST_CHECKPOINT)
        if recorded is None or not (folder / recorded).exists():
            raise RunDirError(f"run={path}: {len(candidates)} best-* checkpoints and last.ckpt does not say "
                              f"which is best; pass one of them as run=<file>")
        return path, folder / recorded
    return path, candidates[0]


def _recorded_best(last: Path) -> str | None:
    """The file name ModelCheckpoint recorded as best in the run's last checkpoint."""
    try:
        callbacks = torch.load(last, map_location="cpu", weights_only=True).get("callbacks", {})
    except Exception:
        return None
    paths = [state.get("best_model_path") for key, state in callbacks.items() if key.startswith("ModelCheckpoint")]
    paths = [p for p in paths if p]
    return Path(paths[0]).name if paths else None


def load_run(path: str | Path, which: str = "last", device: str | torch.device = "cpu") -> LoadedRun:
    run_dir, checkpoint_path = find_checkpoint(Path(path), which)
    cfg = OmegaConf.load(run_dir / CONFIG_FILE)
    # Lightning checkpoints of this suite hold only tensors and plain containers; a damaged one fails in
    # one line that names the run's other checkpoint when that one reads
    other = "best" if which == "last" else "last"
    try:
        fallback = find_checkpoint(run_dir, other)[1]
    except RunDirError:
        fallback = None
    checkpoint = read_checkpoint(checkpoint_path, fallback)
    # the data facts travel in the checkpoint: no need to rebuild (or even have) the training data
    datamodule, facts, tokenizer_dir = None, checkpoint.get("dlm_data_info"), run_dir / TOKENIZER_DIR
    # checkpoints from before the pads were recorded rebuild the facts from the data (a rainbow run
    # would otherwise read its pads as words)
    if facts is not None and "pad_ids" in facts and tokenizer_dir.is_dir():
        from transformers import AutoTokenizer

        info = info_from_dict(facts, AutoTokenizer.from_pretrained(str(tokenizer_dir)))
    else:
        datamodule = build(cfg, "data")
        info = datamodule.data_info()
    module = build_module(cfg, info)
    module.on_load_checkpoint(checkpoint)  # refuses another vocabulary or model shape, in one line
    module.load_state_dict(checkpoint["state_dict"])
    module.to(device).eval()
    return LoadedRun(run_dir, checkpoint_path, cfg, info, module, datamodule)
