"""Job isolation, the DDP child command line and output directory names (in-process, no training)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from suite_helpers import compose_config
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from dlm_lightning.errors import ConfigError, UserError
from dlm_lightning.launch import children
from dlm_lightning.run.job import isolated_job, record_failure
from dlm_lightning.launch.names import MAX_DIRNAME_BYTES, job_dirname, launch_stamp, name_jobs_by_grid


def test_isolated_job_restores_the_environment_and_kills_children_after_a_failure(monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setenv("MASTER_PORT", "1234")
    threads = torch.get_num_threads()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with pytest.raises(RuntimeError, match="job failed"):
        with isolated_job():
            os.environ["LOCAL_RANK"], os.environ["MASTER_PORT"] = "0", "5678"  # what a DDP launch leaves
            torch.set_num_threads(1)
            children._watch_children([child])
            raise RuntimeError("job failed")
    assert "LOCAL_RANK" not in os.environ and os.environ["MASTER_PORT"] == "1234"
    assert torch.get_num_threads() == threads
    assert child.poll() is not None and child.returncode != 0  # killed, not left running


def test_isolated_job_waits_for_children_of_a_successful_job():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1)"])
    with isolated_job():
        children._watch_children([child])
    assert child.returncode == 0  # it finished on its own


def compose_job(overrides: list[str]):
    return compose_config(overrides, hydra=True)


@pytest.fixture
def in_job():
    """Makes this process a job with overrides model=tiny seed=3 schedule=uniform in a given directory."""
    job = compose_job(["model=tiny", "seed=3", "schedule=uniform"])

    def set_output_dir(output_dir: str) -> None:
        with open_dict(job):
            job.hydra.runtime.output_dir, job.hydra.runtime.cwd = output_dir, "/tmp/somewhere"
        HydraConfig.instance().set_config(job)

    yield set_output_dir
    HydraConfig.instance().cfg = None


def test_child_command_runs_this_job_in_single_run_mode_in_its_directory(in_job, monkeypatch):
    job_dir = "/tmp/sweep/model=tiny,seed=3 (a)/[b]/it's #1"  # characters the override grammar rejects
    in_job(job_dir)
    command, cwd, env = children.child_command(local_rank=1)
    assert command[0] == sys.executable and cwd == "/tmp/somewhere"
    args = command[command.index("model=tiny"):]
    assert args[:3] == ["model=tiny", "seed=3", "schedule=uniform"]  # the job's overrides, no -m
    assert "-m" not in args and "--multirun" not in args
    HydraConfig.instance().cfg = None
    # what the child composes from that command line, in its environment
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    child = compose_job(args)
    assert child.hydra.run.dir == job_dir and child.hydra.job.name == "rank1" and child.hydra.output_subdir is None
    assert (child.seed, child.model.d_model) == (3, 32)


def test_launch_stamp_is_torchruns_run_id(monkeypatch):
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    assert len(launch_stamp()) == len("2026-01-01_00-00-00_000000")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "abc123")
    assert launch_stamp() == "torchrun-abc123"
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")  # torchrun without --standalone or --rdzv-id
    with pytest.raises(UserError, match="--standalone or --rdzv-id"):
        launch_stamp()


def test_job_dirname_fits_a_file_name_and_stays_unique():
    short = "model=tiny,seed=0"
    assert job_dirname(short) == short
    long_names = [",".join(f"data.key_{i}={i}" for i in range(40)) + f",seed={s}" for s in (0, 1)]
    shortened = [job_dirname(n) for n in long_names]
    assert all(len(n.encode()) <= MAX_DIRNAME_BYTES and n.startswith("data.key_0=0,") for n in shortened)
    assert shortened[0] != shortened[1]


def test_sweep_jobs_are_named_by_the_overrides_that_sweep():
    argv = ["run.py", "-m", "model=tiny", "+trainer.fast_dev_run=1", "~callbacks.progress", "seed=0,1",
            "decoder=range(2)", "hydra.sweep.dir=x", "--cfg", "job"]
    assert name_jobs_by_grid(argv) == [
        *argv[:-2], "hydra.job.config.override_dirname.exclude_keys=[resume,model,trainer.fast_dev_run,callbacks.progress]",
        "--cfg", "job"]
    assert name_jobs_by_grid(["run.py", "model=tiny"]) == ["run.py", "model=tiny"]  # a single run has no jobs
    own = ["run.py", "-m", "seed=0,1", "hydra.job.config.override_dirname.exclude_keys=[]"]
    assert name_jobs_by_grid(own) == own  # the user's own choice stands


def test_record_failure_writes_a_summary_line_and_the_traceback(tmp_path):
    try:
        raise ValueError("bad value\nsecond line")
    except ValueError as error:
        assert record_failure(tmp_path / "job", error) == "ValueError: bad value"
    text = (tmp_path / "job" / "error.txt").read_text()
    assert text.startswith("ValueError: bad value\nTraceback") and "raise ValueError" in text
    record_failure(tmp_path / "user", ConfigError("model.n_heads", 3, "must divide d_model=32"))
    assert (tmp_path / "user" / "error.txt").read_text() == \
        "ConfigError: model.n_heads=3 is invalid: must divide d_model=32\n"  # no traceback for user errors
