"""An exclusive lock on a run directory for the life of the process that trains in it.

The lock is ``flock`` on the directory itself, so it leaves no file behind and is released by the
kernel when the process dies (a SIGKILLed run never leaves a stale lock). Only rank 0 locks: the other
ranks of a DDP run work in the same directory on purpose.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from lightning.fabric.utilities.rank_zero import rank_zero_only

from dlm_lightning.errors import RunDirError

try:
    import fcntl
except ImportError:  # not POSIX: no lock (documented)
    fcntl = None


@contextmanager
def run_dir_lock(run_dir: Path):
    if fcntl is None or rank_zero_only.rank != 0 or not run_dir.is_dir():
        yield
        return
    descriptor = os.open(run_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirError(f"{run_dir} is in use by another process (a run still training, or another "
                              f"resume of it); wait for it to end") from None
        yield
    finally:
        os.close(descriptor)  # closing the descriptor releases the lock
