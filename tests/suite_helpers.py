"""Plain helpers and constants shared by the tests (importable by name, unlike conftest.py when a subfolder
has its own conftest.py): ``from suite_helpers import compose_config, TINY``. conftest.py re-exports them."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO / "configs"

# A tiny, fast configuration of the main job (CLI override syntax).
TINY = ("model=tiny", "trainer.max_epochs=1", "data.train_size=256", "data.val_size=64", "data.test_size=64",
        "data.batch_size=32", "data.eval_batch_size=64", "callbacks.progress=null")

# The session's real runs (conftest.cli_runs): two epochs of 40 steps (1280 documents, batch 32), long
# enough for a run to be killed inside epoch 2.
RESUME_RUN = ("model=tiny", "trainer.max_epochs=2", "data.train_size=1280", "data.val_size=64",
              "data.test_size=64", "data.batch_size=32", "data.eval_batch_size=64", "callbacks.progress=null",
              "trainer.log_every_n_steps=1")
STEPS_PER_EPOCH = 40


def compose_config(overrides=(), config_name: str = "config", hydra: bool = False):
    """Composes ``configs/<config_name>.yaml`` exactly as the CLI does: argv normalised, resolvers registered."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from dlm_lightning.cli import config_groups, normalize_group_overrides, register_resolvers

    register_resolvers()
    argv = normalize_group_overrides(list(overrides), config_groups())
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name, overrides=argv, return_hydra_config=hydra)
