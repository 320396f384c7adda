"""``provenance.json``: what produced a run (code version, packages, command line), for reproducing it."""

from __future__ import annotations

import json
import platform
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

PACKAGES = ("dlm-lightning", "torch", "lightning", "torchmetrics", "transformers", "tokenizers", "datasets",
            "hydra-core", "omegaconf", "peft", "numpy")


def provenance() -> dict:
    return {"git": _git_state(Path(__file__).resolve().parent.parent), "command": list(getattr(sys, "orig_argv", sys.argv)),  # as typed: argv is rewritten later
            "python": platform.python_version(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "packages": _versions()}


def write_provenance(path: Path) -> None:
    path.write_text(json.dumps(provenance(), indent=2) + "\n")


def _versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _git_state(source: Path) -> dict | None:
    """Commit and dirty flag of the checkout the code runs from; None for an installed package."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(source), *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
    try:
        if not (source / ".git").exists():
            return None
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return None
