"""One Hydra job in a process that may run many of them (``-m``): isolation and what a job records.

A job directory gets ``overrides.yaml`` (the job's task overrides, as Hydra's own ``.hydra/overrides.yaml``;
the sweep report reads its grid from them), ``ranks/rank<N>.json`` (what each process trained: its
overrides and a hash of its resolved config) and, when it fails, ``error.txt``.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import traceback
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.distributed as dist
from lightning.fabric.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from dlm_lightning.errors import UserError
from dlm_lightning.launch.children import end_children
from dlm_lightning.run.layout import ERROR_FILE, RANKS_DIR



@contextmanager
def isolated_job():
    """Leaves the process as the job found it, so the next job of a sweep starts clean.

    Lightning's DDP launch sets LOCAL_RANK, WORLD_SIZE, MASTER_PORT, ... in ``os.environ`` (a stale
    LOCAL_RANK makes the next job believe its ranks were started externally and wait for them forever),
    lowers the torch thread count, and leaves the process group and the child ranks behind.
    """
    environ, threads, rank = dict(os.environ), torch.get_num_threads(), rank_zero_only.rank
    succeeded = False
    try:
        yield
        succeeded = True
    finally:
        end_children(succeeded)
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for key in set(os.environ) - set(environ):
            del os.environ[key]
        os.environ.update(environ)
        torch.set_num_threads(threads)
        rank_zero_only.rank = rank


def record_failure(run_dir: Path, error: Exception) -> str:
    """Writes ``error.txt`` (first line: what failed; then the traceback unless it is a UserError) and
    returns that first line."""
    summary = f"{type(error).__name__}: {error}".splitlines()[0]
    if rank_zero_only.rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        details = "" if isinstance(error, UserError) else "".join(traceback.format_exception(error))
        (run_dir / ERROR_FILE).write_text(f"{summary}\n{details}")
    return summary


def record_rank(run_dir: Path, cfg: DictConfig, overrides: list[str]) -> None:
    """``ranks/rank<N>.json``: what this process trained, to check that every rank ran the same job."""
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_available() and dist.is_initialized() else (0, 1)
    record = {"rank": rank, "world_size": world, "host": socket.gethostname(), "pid": os.getpid(),
              "overrides": list(overrides), "config_sha256": config_hash(cfg)}
    (run_dir / RANKS_DIR).mkdir(parents=True, exist_ok=True)
    (run_dir / RANKS_DIR / f"rank{rank}.json").write_text(json.dumps(record, indent=2) + "\n")


def config_hash(cfg: DictConfig) -> str:
    text = OmegaConf.to_yaml(OmegaConf.create(OmegaConf.to_container(cfg, resolve=True)), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
