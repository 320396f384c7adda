"""``run.log``: everything the job printed, warned and logged, in the run directory.

Lightning's loggers write to the stream they found at import time and do not propagate, so teeing
``sys.stdout``/``sys.stderr`` alone misses them: their records get a handler of their own. Output
before the run directory is claimed is buffered, so a refused run leaves no file behind.
"""

from __future__ import annotations

import io
import logging
import re
import sys
from contextlib import contextmanager
from pathlib import Path

# Lightning's and Hydra's loggers write to their own handlers and do not propagate to the root logger.
LOGGERS = ("", "lightning", "lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LIVE_DISPLAY = re.compile(r"\x1b\[(\?25[lh]|\d*[AK])")  # cursor moves: a progress bar redrawing itself


class ConsoleLog:
    """The log's sink: an in-memory buffer until ``attach``, then the file."""

    def __init__(self):
        self.sink: io.TextIOBase = io.StringIO()

    def write(self, text: str) -> None:
        if LIVE_DISPLAY.search(text):
            return
        self.sink.write(ANSI.sub("", text))
        self.sink.flush()

    def attach(self, path: Path) -> None:
        buffered = self.sink.getvalue() if isinstance(self.sink, io.StringIO) else ""
        self.sink = open(path, "a", encoding="utf-8")
        self.sink.write(buffered)
        self.sink.flush()

    def close(self) -> None:
        self.sink.close()


class _Tee(io.TextIOBase):
    def __init__(self, stream, log: ConsoleLog):
        self.stream, self.log = stream, log

    def write(self, text: str) -> int:
        self.log.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self):
        return getattr(self.stream, "encoding", "utf-8")


class _LogHandler(logging.Handler):
    def __init__(self, log: ConsoleLog):
        super().__init__()
        self.log = log
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.log.write(self.format(record) + "\n")


@contextmanager
def console_log():
    """Tees the console into a ConsoleLog for the duration; call ``attach(path)`` once the path exists."""
    log = ConsoleLog()
    stdout, stderr = sys.stdout, sys.stderr
    handler = _LogHandler(log)
    loggers = [logging.getLogger(name) for name in LOGGERS]
    propagating = [lg for lg in loggers if lg.name != "root" and lg.propagate]
    targets = [lg for lg in loggers if lg not in propagating]
    sys.stdout, sys.stderr = _Tee(stdout, log), _Tee(stderr, log)
    for logger in targets:
        logger.addHandler(handler)
    try:
        yield log
    finally:
        sys.stdout, sys.stderr = stdout, stderr
        for logger in targets:
            logger.removeHandler(handler)
        log.close()
