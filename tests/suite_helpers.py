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


_fork_server = None


def start_entry_point(args, cwd: Path, stdout: Path, stderr: Path, env: dict[str, str] | None = None,
                      module: str = "experiments.run"):
    """A real ``python -m <module> *args`` process (Popen-like: pid, poll, wait, send_signal, kill) writing to
    the given files; forked from the session's fork server (tests/fork_server.py), which has the imports
    done, or a plain subprocess where forking is not available."""
    import subprocess
    import sys

    import fork_server

    global _fork_server
    env = cli_env() if env is None else env
    if not fork_server.usable():
        with open(stdout, "w") as out, open(stderr, "w") as err:
            return subprocess.Popen([sys.executable, "-m", module, *args], cwd=cwd, env=env, stdout=out, stderr=err,
                                    stdin=subprocess.DEVNULL)
    if _fork_server is None or _fork_server.process.poll() is not None:  # none yet, or it died: a new one
        _fork_server = fork_server.ForkServer(cli_env())
    return _fork_server.spawn(module, args, cwd, env, stdout, stderr)


def run_entry_point(*args: str, cwd: Path, timeout: float = 300, env: dict[str, str] | None = None,
                    module: str = "experiments.run"):
    """Runs ``python -m <module> *args`` to the end (see ``start_entry_point``) -> subprocess.CompletedProcess."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="dlm_entry_point_") as scratch:
        out, err = Path(scratch) / "stdout", Path(scratch) / "stderr"
        process = start_entry_point(args, cwd, out, err, env, module)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return subprocess.CompletedProcess([module, *args], process.returncode, out.read_text(), err.read_text())


def stop_fork_server() -> None:
    global _fork_server
    if _fork_server is not None:
        _fork_server.stop()
        _fork_server = None


def save_run(module, cfg, run_dir: Path) -> Path:
    """A finished-looking run directory (config.yaml and checkpoints/last.ckpt) of an in-memory module,
    for entry points that load runs."""
    import torch
    from omegaconf import OmegaConf

    from dlm_lightning.run.layout import CONFIG_FILE, LAST_CHECKPOINT

    (run_dir / LAST_CHECKPOINT).parent.mkdir(parents=True)
    OmegaConf.save(cfg, run_dir / CONFIG_FILE, resolve=True)
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, run_dir / LAST_CHECKPOINT)
    return run_dir
