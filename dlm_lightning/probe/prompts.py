"""Prompt sources for the probe: the embedded corpus, a dataset through ``datasets`` (LIMA), a local file.

Each source is a callable returning a list of prompt texts; the model applies its own prompt format.
A record's field is named by a dotted path whose parts are keys or list indices: LIMA rows hold
``{"conversations": [question, answer, ...]}``, so the question is ``conversations.0``.
"""

from __future__ import annotations

import json
from pathlib import Path

from dlm_lightning.data import corpus
from dlm_lightning.errors import ConfigError, UserError, require


def _check_limit(limit) -> None:
    require(limit is None or (isinstance(limit, int) and limit >= 1), "limit", limit,
            "must be an integer >= 1, or null for all")


def get_field(record, field: str, where: str, key: str = "prompts.field") -> str:
    value = record
    for part in field.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, (list, tuple)) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            have = f"keys: {', '.join(map(str, value))}" if isinstance(value, dict) else f"a {type(value).__name__}"
            raise UserError(f"{key}={field!r}: {where} has no {part!r} (it has {have})")
    if not isinstance(value, str):
        raise UserError(f"{key}={field!r}: {where} holds a {type(value).__name__}, not text")
    return value


class CorpusPrompts:
    """Prompts of the embedded corpus, as words without [BOS]/[SEP] (the validation split by default).

    Splits are assigned by a hash of the prompt, so held-out prompts are held out for every seed.
    """

    def __init__(self, split: str = "val", limit: int | None = 64, seed: int = 0):
        require(split in corpus.SPLITS, "split", split, f"one of {', '.join(corpus.SPLITS)}")
        _check_limit(limit)
        require(limit is not None, "limit", limit, "the corpus is endless: give a number")
        self.split, self.limit, self.seed = split, limit, seed

    def __call__(self) -> list[str]:
        generator = corpus.CorpusGenerator(seed=self.seed)
        prompts = [generator.document(self.split, i).prompt for i in range(self.limit)]
        return [" ".join(w for w in p if w not in corpus.SPECIAL_TOKENS) for p in prompts]

    def describe(self) -> str:
        return f"embedded corpus, {self.split} split, first {self.limit} prompts"


class DatasetPrompts:
    """The first ``limit`` rows of a ``datasets`` dataset: a hub name, or a local folder or file.

    GAIR/lima is gated and ships a loading script, which ``datasets`` >= 4 refuses; the hub's parquet
    export (revision ``refs/convert/parquet``) holds the same rows. Log in (``HF_TOKEN``) after
    accepting its terms on the hub.
    """

    def __init__(self, dataset: str = "GAIR/lima", split: str = "train", field: str = "conversations.0",
                 limit: int | None = 100, revision: str | None = "refs/convert/parquet",
                 cache_dir: str | None = None):
        _check_limit(limit)
        self.dataset, self.split, self.field, self.limit = dataset, split, field, limit
        self.revision, self.cache_dir = revision, cache_dir

    def __call__(self) -> list[str]:
        import datasets

        try:
            rows = datasets.load_dataset(self.dataset, split=self.split, revision=self.revision,
                                         cache_dir=self.cache_dir)
        except (FileNotFoundError, ConnectionError, RuntimeError, ValueError) as error:
            raise UserError(f"prompts.dataset={self.dataset!r} (split {self.split!r}): cannot load: "
                            f"{str(error).splitlines()[0] if str(error) else type(error).__name__}") from None
        if self.limit is not None:
            rows = rows.select(range(min(self.limit, len(rows))))
        if len(rows) == 0:
            raise UserError(f"prompts.dataset={self.dataset!r}: split {self.split!r} has no rows")
        return [get_field(row, self.field, f"row {i} of {self.dataset}") for i, row in enumerate(rows)]

    def describe(self) -> str:
        return f"{self.dataset} ({self.split} split, field {self.field}), first {self.limit} rows"


class FilePrompts:
    """A local JSONL file (one JSON value per line) or JSON file (a list); ``field`` null for plain strings."""

    def __init__(self, path: str | None = None, field: str | None = "prompt", limit: int | None = None):
        require(path is not None, "path", path, "give a .json or .jsonl file")
        _check_limit(limit)
        self.path, self.field, self.limit = Path(path), field, limit

    def records(self) -> list:
        if not self.path.is_file():
            raise ConfigError("prompts.path", str(self.path), "must be an existing .json or .jsonl file")
        text = self.path.read_text()
        try:
            if self.path.suffix == ".jsonl":
                return [json.loads(line) for line in text.splitlines() if line.strip()]
            data = json.loads(text) if text.strip() else []
        except json.JSONDecodeError as error:
            raise UserError(f"prompts.path={str(self.path)!r} is not valid JSON: {error}") from None
        if not isinstance(data, list):
            raise UserError(f"prompts.path={str(self.path)!r}: a .json file must hold a list of records")
        return data

    def __call__(self) -> list[str]:
        records = self.records()[: self.limit]
        if not records:
            raise UserError(f"prompts.path={str(self.path)!r} holds no prompts")
        prompts = []
        for i, record in enumerate(records):
            where = f"record {i + 1} of {self.path.name}"
            if self.field is None:
                if not isinstance(record, str):
                    raise UserError(f"prompts.field=null needs plain strings, but {where} is a {type(record).__name__}")
                prompts.append(record)
            else:
                prompts.append(get_field(record, self.field, where))
        return prompts

    def describe(self) -> str:
        return f"{self.path} (field {self.field})" + (f", first {self.limit}" if self.limit else "")
