"""A test-only callback, added to a run with ``+callbacks.kill._target_=kill_points.KillOnce``, that
SIGKILLs its own process at one Lightning hook, once per working directory (a marker file stops the
resumed process, which reuses the saved config, from killing itself again)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from lightning.pytorch.callbacks import Callback

HOOKS = ("on_train_batch_start", "on_validation_batch_start", "on_save_checkpoint", "on_fit_end",
         "on_test_batch_start")


class KillOnce(Callback):
    def __init__(self, hook: str, after: int = 1, marker: str = "killed.marker"):
        assert hook in HOOKS, hook
        self.hook, self.after, self.marker, self.calls = hook, after, Path(marker), 0
        for name in HOOKS:
            setattr(self, name, self._maybe_kill if name == hook else getattr(Callback, name).__get__(self))

    def _maybe_kill(self, *args, **kwargs) -> None:
        self.calls += 1
        if self.calls == self.after and not self.marker.exists():
            self.marker.write_text(self.hook)
            os.kill(os.getpid(), signal.SIGKILL)
