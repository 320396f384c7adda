"""Layouts that keep documents apart (``PerDocument``) or join them without separators (``Contiguous``).

``PerDocument`` (LM1B as MDLM trains it, not packed): one row per document, truncated to
``seq_len - 1`` tokens, then EOS, then PAD to ``seq_len``. The suite's bound counts every position,
the padding included (there is no attention mask), so its perplexity is not MDLM's (which skips
padding); compare models of this suite with each other, and MDLM's number only in spirit.
``Contiguous`` (text8): the records are one stream, cut into consecutive rows of ``seq_len``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from dlm_lightning.data.packing import _batches, _document, token_dtype
from dlm_lightning.data.sources import DataSourceError
from dlm_lightning.data.tokenizers import encode_batch
from dlm_lightning.errors import require_positive


class PerDocument:
    prompt_length = 0

    def __init__(self, seq_len: int = 128):
        require_positive(**{"layout.seq_len": seq_len})
        self.seq_len = seq_len

    def fingerprint(self) -> str:
        return f"per_document/seq_len={self.seq_len}"

    def pack(self, records: Iterable, tokenizer, what: str, out: Path) -> dict:
        dtype, eos, pad = token_dtype(len(tokenizer)), tokenizer.eos_token_id, tokenizer.pad_token_id
        stats = {"sequences": 0, "seq_len": self.seq_len, "dtype": np.dtype(dtype).name, "truncated": 0,
                 "padding_tokens": 0}
        with open(out, "wb") as handle:
            for batch in _batches(records):
                texts = [t for t in (_document(r) for r in batch) if t.strip()]
                rows = []
                for ids in encode_batch(tokenizer, texts):
                    stats["truncated"] += len(ids) > self.seq_len - 1
                    ids = ids[: self.seq_len - 1] + [eos]
                    stats["padding_tokens"] += self.seq_len - len(ids)
                    rows.append(ids + [pad] * (self.seq_len - len(ids)))
                if rows:
                    handle.write(np.asarray(rows, dtype=dtype).tobytes())
                stats["sequences"] += len(rows)
        if stats["sequences"] == 0:
            raise DataSourceError(f"{what} has no non-empty document")
        return stats


class Contiguous:
    prompt_length = 0

    def __init__(self, seq_len: int = 256):
        require_positive(**{"layout.seq_len": seq_len})
        self.seq_len = seq_len

    def fingerprint(self) -> str:
        return f"contiguous/seq_len={self.seq_len}"

    def pack(self, records: Iterable, tokenizer, what: str, out: Path) -> dict:
        dtype, tokens = token_dtype(len(tokenizer)), 0
        with open(out, "wb") as handle:
            for batch in _batches(records, 16):
                ids = [i for doc in encode_batch(tokenizer, [_document(r) for r in batch]) for i in doc]
                handle.write(np.asarray(ids, dtype=dtype).tobytes())
                tokens += len(ids)
            count = tokens // self.seq_len
            handle.truncate(count * self.seq_len * np.dtype(dtype).itemsize)
        if count == 0:
            raise DataSourceError(f"{what} has {tokens} tokens, fewer than one sequence of seq_len={self.seq_len}")
        return {"sequences": count, "seq_len": self.seq_len, "dtype": np.dtype(dtype).name, "tokens": tokens,
                "dropped_tail_tokens": tokens - count * self.seq_len}
