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
from dlm_lightning.data.info import DataInfo
from dlm_lightning.data.portable import info_from_dict
from dlm_lightning.errors import RunDirError, require
from dlm_lightning.run_layout import CHECKPOINT_DIR, CONFIG_FILE, LAST_CHECKPOINT

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
    return path, candidates[-1]  # best-* keeps one file by default; the latest name if several


def load_run(path: str | Path, which: str = "last", device: str | torch.device = "cpu") -> LoadedRun:
    run_dir, checkpoint_path = find_checkpoint(Path(path), which)
    cfg = OmegaConf.load(run_dir / CONFIG_FILE)
    # Lightning checkpoints of this suite hold only tensors and plain containers
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    datamodule, facts, tokenizer_dir = None, checkpoint.get("dlm_data_info"), run_dir / "tokenizer"
    if facts is not None and tokenizer_dir.is_dir():
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
