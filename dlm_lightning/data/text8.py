"""text8 (Mahoney): the first 10^8 characters of a cleaned English Wikipedia dump, 27 symbols (a-z and
space), read from ``text8.zip``. The field's split (MDLM, MD4): the first 90M characters train, the
next 5M validation, the last 5M test; sequences are consecutive 256-character chunks.

``path``: a local text8.zip (or the unzipped text8 file); null downloads ``url`` into ``cache_dir``.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Iterator

from dlm_lightning.data.sources import SPLITS, DataSourceError
from dlm_lightning.errors import require

URL = "http://mattmahoney.net/dc/text8.zip"
CHUNK = 1 << 20  # characters per record handed to the tokenizer


class Text8Source:
    def __init__(self, path: str | None = None, url: str = URL, train_chars: int = 90_000_000,
                 val_chars: int = 5_000_000, cache_dir: str = ".dlm_cache"):
        require(isinstance(train_chars, int) and train_chars > 0, "source.train_chars", train_chars, "an integer > 0")
        require(isinstance(val_chars, int) and val_chars > 0, "source.val_chars", val_chars, "an integer > 0")
        self.path, self.url, self.cache_dir = path, url, cache_dir
        self.train_chars, self.val_chars = train_chars, val_chars

    def describe(self) -> str:
        return f"text8 ({self.path or self.url})"

    def fingerprint(self, split: str) -> str:
        return f"text8/{hashlib.sha256(self.text.encode()).hexdigest()[:16]}/{self.train_chars}/{self.val_chars}/{split}"

    def records(self, split: str) -> Iterator[str]:
        require(split in SPLITS, "split", split, f"one of {', '.join(SPLITS)}")
        bounds = {"train": (0, self.train_chars), "val": (self.train_chars, self.train_chars + self.val_chars),
                  "test": (self.train_chars + self.val_chars, len(self.text))}
        start, stop = bounds[split]
        if stop <= start or start >= len(self.text):
            raise DataSourceError(f"the {split} split of {self.describe()} is empty ({len(self.text)} characters; "
                                  f"train_chars={self.train_chars}, val_chars={self.val_chars})")
        for at in range(start, stop, CHUNK):
            yield self.text[at: min(at + CHUNK, stop)]

    @property
    def text(self) -> str:
        if not hasattr(self, "_text"):
            self._text = _read(self._file())
        return self._text

    def _file(self) -> Path:
        if self.path is not None:
            path = Path(self.path).expanduser()
            if not path.is_file():
                raise DataSourceError(f"text8 file {self.path!r} does not exist (data.source.path)")
            return path
        target = Path(self.cache_dir) / "text8" / "text8.zip"
        if not target.is_file():
            import urllib.request

            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                urllib.request.urlretrieve(self.url, target.with_suffix(".part"))
            except OSError as error:
                raise DataSourceError(f"cannot download text8 from {self.url} (offline? set data.source.path to "
                                      f"a local text8.zip): {error}") from None
            target.with_suffix(".part").rename(target)
        return target


def _read(path: Path) -> str:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return archive.read(archive.namelist()[0]).decode("ascii")
    return path.read_text(encoding="ascii")
