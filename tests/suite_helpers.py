"""Plain helpers and constants shared by the tests (importable by name, unlike conftest.py when a subfolder
has its own conftest.py): ``from suite_helpers import compose_config, TINY``. conftest.py re-exports them."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO / "dlm_lightning" / "configs"

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
    """Composes ``configs/<config_name>.yaml`` exactly as the CLI does (the suite's own helper)."""
    from dlm_lightning.cli import compose_config as compose

    return compose(overrides, config_name, hydra)


def cli_env() -> dict[str, str]:
    """The environment of CLI subprocesses: single-threaded torch, no colour codes, Hydra's short errors."""
    import os

    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", NO_COLOR="1", TERM="dumb",
                HYDRA_FULL_ERROR="0")


def cli_command(*args: str) -> list[str]:
    import sys

    return [sys.executable, "-m", "experiments.run", *args]
