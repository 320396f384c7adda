"""User-facing errors: each prints as one line naming the problem and what is allowed."""

from __future__ import annotations

from typing import Any


class UserError(Exception):
    """Bad input from the user (config, files, checkpoints); entry points print it without a traceback."""


class ConfigError(UserError, ValueError):
    """A configuration value is invalid; the message names the key, the value and what is allowed."""

    def __init__(self, key: str, value: Any, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r} is invalid: {allowed}")

    def under(self, prefix: str) -> "ConfigError":
        return ConfigError(f"{prefix}.{self.key}", self.value, self.allowed)


class CheckpointMismatch(UserError, ValueError):
    """A checkpoint was made for other data or another model shape."""


class RunDirError(UserError):
    """A run directory cannot be used (already holds a run, or has nothing to resume)."""


class TrainingDiverged(UserError, FloatingPointError):
    """The loss became NaN or infinite."""


def require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(key, value, allowed)


def require_positive(**values: Any) -> None:
    for key, value in values.items():
        require(isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0,
                key, value, "must be > 0")


def first_line(error: BaseException) -> str:
    """A framework error's first line (its message may run over many), or its type when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
