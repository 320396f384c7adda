"""Real text as a DataModule: a source, a tokenizer and a layout, tokenised once into an on-disk cache.

Each split is tokenised into an int array [N, seq_len] cached under ``cache_dir`` keyed by (source and
split, tokenizer, layout), and read back memory-mapped. Training ids ``epoch * train_size + j`` (from
the suite's sampler) map to pass ``id // N`` and position ``id % N`` of a permutation seeded by
(seed, pass), so data order is a function of the seed and the index alone and every sequence is seen
once per pass; evaluation ids ``0..size-1`` read sequences in order.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import torch
from torch.utils.data import Dataset

from dlm_lightning.data.cache import cached
from dlm_lightning.data.collate import VariableLengthCollate
from dlm_lightning.data.datamodule import IndexedDataModule
from dlm_lightning.data.info import DataInfo
from dlm_lightning.data.layouts import read_sequences
from dlm_lightning.data.sources import SPLITS
from dlm_lightning.data.tokenizers import tokenizer_digest
from dlm_lightning.errors import ConfigError, require

TOKENS = "tokens.bin"  # raw row-major [N, seq_len] tokens; dtype and shape in meta.json
COUNT_TOKENS = 1 << 25  # token statistics read at most this many training tokens (rows spread evenly)


class SequenceDataset(Dataset):
    """Rows of a token array; with ``shuffle_seed`` the row order is permuted afresh for every pass."""

    def __init__(self, tokens: np.ndarray, shuffle_seed: int | None = None):
        self.tokens, self.shuffle_seed = tokens, shuffle_seed
        self._permutation: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.tokens)

    def row(self, index: int) -> int:
        epoch, position = divmod(int(index), len(self.tokens))
        if self.shuffle_seed is None:
            return position
        if self._permutation is None or self._permutation[0] != epoch:
            rng = np.random.default_rng([self.shuffle_seed, epoch])
            self._permutation = (epoch, rng.permutation(len(self.tokens)))
        return int(self._permutation[1][position])

    def __getitem__(self, index: int) -> dict:
        ids = torch.from_numpy(self.tokens[self.row(index)].astype(np.int64))
        return {"input_ids": ids, "index": index}

    # DataLoader workers started by spawn receive a pickle: send the memory map's file, not the data
    def __getstate__(self) -> dict:
        state = dict(self.__dict__, _permutation=None)
        if isinstance(self.tokens, np.memmap):
            state["tokens"] = ("memmap", self.tokens.filename, self.tokens.dtype.str, self.tokens.shape)
        return state

    def __setstate__(self, state: dict) -> None:
        if isinstance(state["tokens"], tuple):
            _, path, dtype, shape = state["tokens"]
            state["tokens"] = np.memmap(path, dtype=np.dtype(dtype), mode="r", shape=shape)
        self.__dict__.update(state)


class TextDataModule(IndexedDataModule):
    """``train_size`` null: one pass over the training sequences per epoch; ``val_size``/``test_size``
    null: the whole split (a larger number is capped at the split's size).
    ``variable_length``: the fraction of training batches cropped to a random length."""

    def __init__(self, source, tokenizer, layout, seed: int = 0, batch_size: int = 64,
                 train_size: int | None = None, val_size: int | None = None, test_size: int | None = None,
                 eval_batch_size: int | None = None, num_workers: int = 0, variable_length: float = 0.0,
                 cache_dir: str = ".dlm_cache"):
        placeholder = lambda size: 1 if size is None else size  # noqa: E731 (real sizes come with the data)
        super().__init__(batch_size, placeholder(train_size), placeholder(val_size), placeholder(test_size),
                         num_workers, eval_batch_size)
        self.requested = {"train": train_size, "val": val_size, "test": test_size}
        self.source, self.tokenizer_spec, self.layout = source, tokenizer, layout
        self.seed, self.cache_dir = seed, cache_dir
        self.split_stats: dict[str, dict] = {}  # what tokenising each split recorded (documents, skips...)
        self.collate = VariableLengthCollate(variable_length, layout.prompt_length + 1, seed)

    # ---- preparation (once per process; the cache makes it once per machine) ------------------------
    @cached_property
    def tokenizer(self):
        return self.tokenizer_spec.load(self.source, self.cache_dir)

    @cached_property
    def tokens(self) -> dict[str, np.ndarray]:
        arrays = {split: self._tokenise(split) for split in SPLITS}
        for split, array in arrays.items():
            wanted = self.requested[split]
            if wanted is None:
                self.sizes[split] = len(array)
            else:  # training ids may run past the split (next pass); evaluation reads each sequence once
                self.sizes[split] = wanted if split == "train" else min(wanted, len(array))
        require(self.sizes["train"] >= self.batch_size, "batch_size", self.batch_size,
                f"must be <= the number of training sequences per epoch ({self.sizes['train']})")
        return arrays

    def _tokenise(self, split: str) -> np.ndarray:
        tokenizer, layout = self.tokenizer, self.layout
        key = {"source": self.source.fingerprint(split), "split": split,
               "tokenizer": tokenizer_digest(tokenizer), "layout": layout.fingerprint()}
        what = f"the {split} split of {self.source.describe()}"

        entry, stats = cached(self.cache_dir, "tokens", key,
                              lambda out: layout.pack(self.source.records(split), tokenizer, what, out / TOKENS))
        self.split_stats[split] = stats
        return read_sequences(entry / TOKENS, stats)

    def prepare(self) -> DataInfo:
        """Loads or trains the tokenizer, tokenises every split (or reads the cache), sets the sizes."""
        try:
            return self._info
        except ConfigError as error:  # raised while reading the data: name the key under data.
            raise error.under("data") from None

    def setup(self, stage: str | None = None) -> None:
        self.prepare()  # settles the split sizes before the loaders are built

    # ---- the IndexedDataModule interface --------------------------------------------------------
    def dataset(self, split: str) -> Dataset:
        self.prepare()
        return SequenceDataset(self.tokens[split], self.seed if split == "train" else None)

    def collate_fn(self, split: str):
        return self.collate if split == "train" else None

    @cached_property
    def _info(self) -> DataInfo:
        tokenizer, prompt_length = self.tokenizer, self.layout.prompt_length
        vocab_size = len(tokenizer)
        counts = torch.from_numpy(answer_counts(self.tokens["train"], prompt_length, vocab_size))
        return DataInfo(
            vocab_size=vocab_size, mask_id=tokenizer.mask_token_id, pad_id=tokenizer.pad_token_id,
            eos_id=tokenizer.eos_token_id, prompt_length=prompt_length, seq_len=self.layout.seq_len,
            special_ids=tuple(sorted(set(tokenizer.all_special_ids))), token_counts=counts,
            tokenizer=tokenizer,
        )

    def data_info(self) -> DataInfo:
        return self.prepare()


def answer_counts(tokens: np.ndarray, prompt_length: int, vocab_size: int) -> np.ndarray:
    """float64 counts of answer tokens over the training rows, or over evenly spread rows of a large
    split (a memory-mapped corpus is read in chunks, never whole)."""
    rows = np.arange(len(tokens))
    per_row = tokens.shape[1] - prompt_length
    if len(rows) * per_row > COUNT_TOKENS:
        rows = np.linspace(0, len(tokens) - 1, COUNT_TOKENS // per_row).astype(np.int64)
    counts = np.zeros(vocab_size, dtype=np.float64)
    for chunk in np.array_split(rows, max(1, len(rows) // 65536)):
        counts += np.bincount(np.asarray(tokens[chunk, prompt_length:]).ravel(), minlength=vocab_size)
    return counts

