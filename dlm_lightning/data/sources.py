"""Text sources read with Hugging Face ``datasets.load_dataset``: hub datasets by name, local dataset
directories, and local text / JSON / JSONL files, all through the same call.

A source yields, per split, the value of one field of each record: a string (a document) or, for
prompt -> answer data, a list of turns (LIMA's ``conversations``) or a tuple of fields.
Split specs name a split of the loaded dataset, optionally sliced: ``train``, ``train[:90%]``,
``train[2000:]``. Slices go to ``datasets`` as they are; a streamed dataset takes absolute slices only,
applied with ``skip``/``take`` (percentages would need the length, which a stream does not know).
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cached_property
from pathlib import Path
from typing import Iterator

from omegaconf import DictConfig, ListConfig, OmegaConf

from dlm_lightning.data.cache import file_sha256
from dlm_lightning.errors import ConfigError, UserError, first_line, require

SPLITS = ("train", "val", "test")
_SLICE = re.compile(r"^([\w.-]+)\[([^:\]]*):([^:\]]*)\]$")
BATCH = 1000  # records per read
BUILDERS = ("text", "json", "csv", "parquet")  # datasets' builders for local (or hf://) files
TEXT_BUILDERS = ("text", "json", "csv")


class DataSourceError(UserError):
    """A data source cannot be read (missing file, unreachable hub dataset, empty split)."""


class HFSource:
    """Records from ``load_dataset(path, name, data_files=..., revision=..., streaming=...)``.

    ``path`` is a hub name (``Salesforce/wikitext``), a local dataset directory, or a builder
    (``text``, ``json``) reading ``data_files``, which may be local paths or ``hf://`` URLs.
    ``splits`` maps this suite's splits (train, val, test) to split specs of the loaded dataset.
    ``field`` is one column name, or a list of names read together as a tuple.
    """

    def __init__(self, path: str, splits: dict[str, str], field: str | list[str] = "text",
                 name: str | None = None, data_files: str | list | dict | None = None,
                 revision: str | None = None, streaming: bool = False, options: dict | None = None,
                 hf_cache_dir: str | None = None):
        require(isinstance(path, str) and path != "", "source.path", path, "a hub dataset name, a local directory, "
                "or a builder (text, json) with data_files")
        splits = dict(splits or {})
        missing = [s for s in SPLITS if not splits.get(s)]
        require(not missing, "source.splits", splits, f"must give a split spec for each of {', '.join(SPLITS)} "
                f"(missing: {', '.join(missing)})")
        self.path, self.name, self.revision, self.streaming = path, name, revision, bool(streaming)
        self.splits = {s: str(splits[s]) for s in SPLITS}
        self.fields = [field] if isinstance(field, str) else list(field)
        require(bool(self.fields) and all(isinstance(f, str) for f in self.fields), "source.field", field,
                "a column name or a list of column names")
        self.data_files = _plain(data_files)
        if isinstance(self.data_files, dict):  # a split given as null has no files
            self.data_files = {k: v for k, v in self.data_files.items() if v is not None} or None
        self.options = dict(_plain(options) or {})
        self.hf_cache_dir = hf_cache_dir

    # ---- identity -------------------------------------------------------------------------------
    def describe(self) -> str:
        if self.path in BUILDERS:
            return f"{self.path} files {self.data_files}"
        return self.path if not self.name else f"{self.path}/{self.name}"

    def fingerprint(self, split: str) -> str:
        """What the tokenised cache of ``split`` depends on: local file contents are hashed."""
        self._check_local_files()
        return json.dumps({
            "path": self.path, "name": self.name, "revision": self.revision, "split": self.splits[split],
            "fields": self.fields, "options": self.options, "files": self._file_digests,
        }, sort_keys=True)

    # ---- reading --------------------------------------------------------------------------------
    def records(self, split: str) -> Iterator:
        """The field value of every record of ``split``, in the dataset's order."""
        dataset = self._load(split)
        seen = 0
        for batch in dataset.iter(batch_size=BATCH):
            absent = [f for f in self.fields if f not in batch]
            if absent:
                raise ConfigError("source.field", absent[0] if len(self.fields) == 1 else self.fields,
                                  f"not a field of {self.describe()}; its fields: {', '.join(batch)}")
            columns = [batch[f] for f in self.fields]
            for values in zip(*columns):
                seen += 1
                yield values[0] if len(values) == 1 else tuple(values)
        if seen == 0:
            raise DataSourceError(f"the {split} split of {self.describe()} "
                                  f"({self.splits[split]}) is empty")

    def _load(self, split: str):
        import datasets

        self._check_local_files()
        spec = self.splits[split]
        match = _SLICE.match(spec)
        base = match.group(1) if self.streaming and match else spec  # a stream is sliced below
        kwargs = dict(name=self.name, data_files=self.data_files, revision=self.revision,
                      streaming=self.streaming, cache_dir=self._datasets_cache_dir(), **self.options)
        try:
            dataset = datasets.load_dataset(self.path, split=base, **{k: v for k, v in kwargs.items()
                                                                        if v is not None})
        except FileNotFoundError as error:
            raise DataSourceError(f"cannot read {self.describe()}: {first_line(error)}") from None
        except ConnectionError as error:
            raise DataSourceError(f"cannot reach {self.describe()} on the Hugging Face hub (offline? "
                                  f"use a local copy: data.source.path=<dir>): {first_line(error)}") from None
        except ValueError as error:
            if "split" in str(error).lower():
                raise ConfigError(f"source.splits.{split}", spec, first_line(error)) from None
            raise DataSourceError(f"cannot load {self.describe()}: {first_line(error)}") from None
        if self.streaming and match:
            dataset = _stream_slice(dataset, match, split, spec)
        return dataset

    def _datasets_cache_dir(self) -> str | None:
        """``datasets`` keys its cache of local files by path and modification time, so a file replaced
        with its time kept (``cp -p``, ``rsync -a``) would be read from the old cache: local files get
        a cache directory of their own per content digest."""
        if not self._file_digests:
            return self.hf_cache_dir
        import datasets

        digest = hashlib.sha256(json.dumps(self._file_digests, sort_keys=True).encode()).hexdigest()[:20]
        return str(Path(self.hf_cache_dir or datasets.config.HF_DATASETS_CACHE) / "dlm-by-content" / digest)

    # ---- local files ----------------------------------------------------------------------------
    def _local_files(self) -> list[str]:
        files = self.data_files
        if files is None:
            return []
        if isinstance(files, dict):
            files = [f for v in files.values() for f in (v if isinstance(v, list) else [v])]
        elif isinstance(files, str):
            files = [files]
        return [f for f in files if "://" not in f and not any(c in f for c in "*?[")]

    def _check_local_files(self) -> None:
        """Checked when the data is first read (not at construction, so configs build without files)."""
        require(self.path not in BUILDERS or bool(self.data_files), "source.data_files", self.data_files,
                f"the {self.path} builder reads files: set data.source.data_files.train=<file>")
        for f in self._local_files():
            if not Path(f).is_file():
                raise DataSourceError(f"data file {f!r} does not exist (data.source.data_files)")
            if self.path in TEXT_BUILDERS:
                check_text_file(Path(f), json_lines=self.path == "json" and not f.endswith(".json"))
        looks_local = self.path.startswith(("/", "./", "../", "~"))
        if looks_local and not Path(self.path).expanduser().exists():
            raise DataSourceError(f"dataset directory {self.path!r} does not exist")

    @cached_property
    def _file_digests(self) -> dict[str, str]:
        """SHA-256 of each local data file, or of each file of a local dataset directory."""
        files, root = [Path(f) for f in self._local_files()], Path(self.path).expanduser()
        if root.is_dir():
            hidden = lambda p: any(part.startswith(".") for part in p.relative_to(root).parts)  # noqa: E731
            files += [p for p in sorted(root.rglob("*")) if p.is_file() and not hidden(p)]
        return {str(f): file_sha256(f) for f in files}


def check_text_file(path: Path, json_lines: bool) -> None:
    """An empty, binary or (for JSON lines) unparseable data file fails in one line naming file and line."""
    data = path.read_bytes()
    if not data.strip():
        raise DataSourceError(f"data file {str(path)!r} is empty")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataSourceError(f"data file {str(path)!r} is not UTF-8 text (byte {error.start}): "
                              f"binary, or another encoding") from None
    if "\x00" in text:
        raise DataSourceError(f"data file {str(path)!r} holds NUL bytes: a binary file, not text")
    if json_lines:
        for number, line in enumerate(text.splitlines(), start=1):
            try:
                line.strip() and json.loads(line)
            except json.JSONDecodeError as error:
                raise DataSourceError(f"data file {str(path)!r} line {number} is not valid JSON: {error.msg} "
                                      f"(column {error.colno})") from None


def _stream_slice(dataset, match: re.Match, split: str, spec: str):
    start, stop = match.group(2), match.group(3)
    ok = all(v == "" or v.isdigit() for v in (start, stop))
    require(ok, f"source.splits.{split}", spec, "a streamed dataset takes absolute slices [start:stop] "
            "with start, stop >= 0 (no percentages, no negative indices)")
    start = int(start or 0)
    if start:
        dataset = dataset.skip(start)
    if stop != "":
        dataset = dataset.take(max(int(stop) - start, 0))
    return dataset


def _plain(value):
    """OmegaConf containers -> plain Python (datasets checks isinstance(value, dict/list))."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value
