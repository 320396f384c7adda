"""Layouts: how tokenised records become fixed-length training sequences (an int array [N, L]).

``Wrap`` (pretraining): documents are concatenated with EOS after each one and cut into consecutive
sequences of ``seq_len`` tokens, so a document may run across a sequence boundary and every token
appears exactly once; only the final partial sequence (< seq_len tokens) is dropped.

``PromptAnswer`` (instruction data): each record gives a prompt and an answer. The prompt is
left-padded with PAD to ``prompt_length`` (the model never masks it), the answer follows, padded with
EOS to ``answer_length`` as in LLaDA's instruction data (the EOS padding is trained on). Answers longer
than ``answer_length`` are truncated; records whose prompt is longer than ``prompt_length``, or that
have no answer, are skipped. Both counts are reported in the cache's stats.

``PerDocument`` (LM1B as MDLM trains it, not packed): one row per document, truncated to
``seq_len - 1`` tokens, then EOS, then PAD to ``seq_len``. The suite's bound counts every position,
the padding included (there is no attention mask), so its perplexity is not MDLM's (which skips
padding); compare models of this suite with each other, and MDLM's number only in spirit.
``Contiguous`` (text8): the records are one stream, cut into consecutive rows of ``seq_len``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from dlm_lightning.data.sources import DataSourceError
from dlm_lightning.data.tokenizers import encode_batch
from dlm_lightning.errors import ConfigError, require_positive

BATCH = 1000


def token_dtype(vocab_size: int):
    return np.uint16 if vocab_size <= np.iinfo(np.uint16).max + 1 else np.int32


def _batches(records: Iterable, size: int = BATCH) -> Iterator[list]:
    batch = []
    for record in records:
        batch.append(record)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class _SequenceRows:
    """A layout of rows of ``seq_len`` tokens with no prompt; ``kind`` names it in the cache fingerprint."""

    prompt_length = 0
    kind = ""

    def __init__(self, seq_len: int):
        require_positive(**{"layout.seq_len": seq_len})
        self.seq_len = seq_len

    def fingerprint(self) -> str:
        return f"{self.kind}/seq_len={self.seq_len}"


class Wrap(_SequenceRows):
    kind = "wrap"

    def __init__(self, seq_len: int = 128):
        super().__init__(seq_len)

    def pack(self, records: Iterable, tokenizer, what: str, out: Path) -> dict:
        """Writes the sequences to ``out`` as raw tokens (row-major [N, seq_len]); returns stats.

        Written as it goes, so a streamed corpus never has to fit in memory.
        """
        dtype, eos = token_dtype(len(tokenizer)), tokenizer.eos_token_id
        tokens = documents = 0
        with open(out, "wb") as handle:
            for batch in _batches(records):
                texts = [_document(record) for record in batch]
                texts = [t for t in texts if t.strip()]  # blank lines (e.g. WikiText's) are not documents
                ids = [i for doc in encode_batch(tokenizer, texts) for i in (*doc, eos)]
                handle.write(np.asarray(ids, dtype=dtype).tobytes())
                tokens, documents = tokens + len(ids), documents + len(texts)
            count = tokens // self.seq_len
            handle.truncate(count * self.seq_len * np.dtype(dtype).itemsize)  # the final partial sequence
        if count == 0:
            raise DataSourceError(f"{what} has {tokens} tokens in {documents} documents, fewer than "
                                  f"one sequence of seq_len={self.seq_len}")
        return {"sequences": count, "seq_len": self.seq_len, "dtype": np.dtype(dtype).name,
                "documents": documents, "tokens": tokens, "dropped_tail_tokens": tokens - count * self.seq_len}


class PromptAnswer:
    def __init__(self, prompt_length: int = 64, answer_length: int = 192):
        require_positive(**{"layout.prompt_length": prompt_length, "layout.answer_length": answer_length})
        self.prompt_length, self.answer_length = prompt_length, answer_length

    @property
    def seq_len(self) -> int:
        return self.prompt_length + self.answer_length

    def fingerprint(self) -> str:
        return f"prompt_answer/prompt_length={self.prompt_length}/answer_length={self.answer_length}"

    def pack(self, records: Iterable, tokenizer, what: str, out: Path) -> dict:
        """Writes one row of prompt_length + answer_length tokens per usable record to ``out``."""
        dtype, eos, pad = token_dtype(len(tokenizer)), tokenizer.eos_token_id, tokenizer.pad_token_id
        P, A = self.prompt_length, self.answer_length
        stats = {"sequences": 0, "seq_len": P + A, "dtype": np.dtype(dtype).name,
                 "skipped_long_prompt": 0, "skipped_no_answer": 0, "truncated_answer": 0}
        with open(out, "wb") as handle:
            for batch in _batches(records):
                pairs = [_pair(record) for record in batch]
                kept = [p for p in pairs if p is not None and p[1].strip()]
                stats["skipped_no_answer"] += len(pairs) - len(kept)
                if not kept:
                    continue
                rows = []
                prompts = encode_batch(tokenizer, [p for p, _ in kept])
                answers = encode_batch(tokenizer, [a for _, a in kept])
                for prompt, answer in zip(prompts, answers):
                    if len(prompt) > P:
                        stats["skipped_long_prompt"] += 1
                        continue
                    stats["truncated_answer"] += len(answer) > A
                    answer = answer[:A]
                    rows.append([pad] * (P - len(prompt)) + prompt + answer + [eos] * (A - len(answer)))
                handle.write(np.asarray(rows, dtype=dtype).tobytes())
                stats["sequences"] += len(rows)
        if stats["sequences"] == 0:
            raise DataSourceError(f"{what} has no usable prompt -> answer pair (skipped: "
                                  f"{stats['skipped_long_prompt']} with a prompt over prompt_length={P} tokens, "
                                  f"{stats['skipped_no_answer']} without an answer)")
        return stats


def read_sequences(path: Path, stats: dict) -> np.ndarray:
    """The [N, seq_len] token array a layout wrote, memory-mapped read-only."""
    return np.memmap(path, dtype=np.dtype(stats["dtype"]), mode="r",
                     shape=(stats["sequences"], stats["seq_len"]))


def _document(record) -> str:
    if not isinstance(record, str):
        raise ConfigError("source.field", type(record).__name__,
                          "the wrap layout needs a text field (a string per record); for prompt -> answer "
                          "records use the PromptAnswer layout")
    return record


def _pair(record) -> tuple[str, str] | None:
    """(prompt, answer) from a list of turns (LIMA: the first two) or a (prompt, answer) tuple."""
    if isinstance(record, str) or not hasattr(record, "__len__"):
        raise ConfigError("source.field", type(record).__name__,
                          "the prompt -> answer layout needs a list of turns per record (LIMA's "
                          "conversations) or two fields, e.g. field=[prompt, response]")
    if len(record) < 2 or not all(isinstance(t, str) for t in record[:2]):
        return None  # a prompt without an answer (LIMA's test split)
    return record[0], record[1]


class PerDocument(_SequenceRows):
    kind = "per_document"

    def __init__(self, seq_len: int = 128):
        super().__init__(seq_len)

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


class Contiguous(_SequenceRows):
    kind = "contiguous"

    def __init__(self, seq_len: int = 256):
        super().__init__(seq_len)

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
