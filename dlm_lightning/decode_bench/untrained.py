"""A run built from overrides but not trained: decoding speed does not depend on the weights (quality does)."""

from __future__ import annotations

from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from dlm_lightning.build import build, build_module
from dlm_lightning.cli import CONFIG_DIR, register_resolvers
from dlm_lightning.run.load import LoadedRun


def untrained_run(overrides: list[str], seed: int = 0) -> LoadedRun:
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[o for o in overrides if not o.startswith("+trainer")])
    datamodule = build(cfg, "data")
    torch.manual_seed(seed)
    module = build_module(cfg, datamodule.data_info()).eval()
    return LoadedRun(Path("(untrained)"), Path("(none)"), cfg, datamodule.data_info(), module, datamodule)
