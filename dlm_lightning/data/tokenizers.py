"""Tokenizers for real text: any pretrained Hugging Face tokenizer, or a byte-level BPE trained here.

Both give a transformers fast tokenizer with a mask, a padding and an end-of-sequence token (added
when the pretrained one lacks them), saved by the run with ``save_pretrained`` and reloadable with
``AutoTokenizer.from_pretrained(run_dir / "tokenizer")``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable, Iterator

from dlm_lightning.data.cache import cached
from dlm_lightning.data.sources import DataSourceError
from dlm_lightning.errors import require

MASK, PAD, EOS = "[MASK]", "[PAD]", "[EOS]"


def tokenizer_digest(tokenizer) -> str:
    """Identity of a tokenizer for cache keys: its whole serialised form (vocab, merges, added tokens)."""
    text = tokenizer.backend_tokenizer.to_str()
    special = json.dumps([tokenizer.mask_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id])
    return hashlib.sha256((text + special).encode()).hexdigest()[:20]


def with_special_tokens(tokenizer, mask: str = MASK, pad: str = PAD, eos: str = EOS):
    """Adds the mask, padding and end-of-sequence tokens the tokenizer lacks (new ids at the end)."""
    missing = {role: token for role, token in (("mask_token", mask), ("pad_token", pad), ("eos_token", eos))
               if getattr(tokenizer, role) is None}
    if missing:
        tokenizer.add_special_tokens(missing)
    return tokenizer


def encode_batch(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids without added special tokens (the layouts place EOS and padding themselves)."""
    return [e.ids for e in tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False)]


class Pretrained:
    """A pretrained tokenizer by hub name or local path (``gpt2``, ``/models/llada/``)."""

    def __init__(self, name: str, mask_token: str = MASK, pad_token: str = PAD, eos_token: str = EOS):
        require(isinstance(name, str) and name != "", "tokenizer.name", name,
                "a hub tokenizer name or a local directory")
        self.name, self.tokens = name, (mask_token, pad_token, eos_token)

    def load(self, source, cache_dir: str | Path):
        from transformers import AutoTokenizer

        if self.name.startswith(("/", "./", "../", "~")) and not Path(self.name).expanduser().exists():
            raise DataSourceError(f"tokenizer directory {self.name!r} does not exist")
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.name)
        except (OSError, ValueError) as error:
            raise DataSourceError(f"cannot load tokenizer {self.name!r} (a hub name needs the network; "
                                  f"a local directory needs tokenizer files): {str(error).splitlines()[0]}") from None
        if not hasattr(tokenizer, "backend_tokenizer"):
            raise DataSourceError(f"tokenizer {self.name!r} has no fast (Rust) implementation; "
                                  f"only fast tokenizers are supported")
        return with_special_tokens(tokenizer, *self.tokens)


class TrainedBPE:
    """A byte-level BPE with ``vocab_size`` entries trained on the training split, cached on disk.

    ``max_documents`` caps how many training documents it sees (for streamed corpora).
    """

    def __init__(self, vocab_size: int = 1024, min_frequency: int = 2, max_documents: int | None = None):
        require(isinstance(vocab_size, int) and vocab_size >= 260, "tokenizer.vocab_size", vocab_size,
                "an integer >= 260 (256 bytes + special tokens)")
        require(isinstance(min_frequency, int) and min_frequency >= 1, "tokenizer.min_frequency",
                min_frequency, "an integer >= 1")
        require(max_documents is None or (isinstance(max_documents, int) and max_documents > 0),
                "tokenizer.max_documents", max_documents, "null (all) or an integer > 0")
        self.vocab_size, self.min_frequency, self.max_documents = vocab_size, min_frequency, max_documents

    def load(self, source, cache_dir: str | Path):
        from transformers import PreTrainedTokenizerFast

        key = {"source": source.fingerprint("train"), "vocab_size": self.vocab_size,
               "min_frequency": self.min_frequency, "max_documents": self.max_documents}
        entry, _ = cached(cache_dir, "tokenizers", key,
                          lambda out: self._train(_texts(source.records("train"), self.max_documents), out))
        return PreTrainedTokenizerFast.from_pretrained(str(entry))

    def _train(self, texts: Iterable[str], out: Path) -> dict:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
        from transformers import PreTrainedTokenizerFast

        backend = Tokenizer(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=self.vocab_size, min_frequency=self.min_frequency,
                                      special_tokens=[PAD, MASK, EOS], show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        backend.train_from_iterator(texts, trainer)
        # clean_up_tokenization_spaces=False: decode(encode(text)) must give the text back exactly
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token=PAD, mask_token=MASK,
                                            eos_token=EOS, clean_up_tokenization_spaces=False)
        tokenizer.save_pretrained(str(out))
        return {"vocab_size": len(tokenizer)}


def _texts(records: Iterable, limit: int | None) -> Iterator[str]:
    """Strings of the records (each turn of a prompt -> answer record), from at most ``limit`` records."""
    for count, record in enumerate(records):
        if limit is not None and count >= limit:
            return
        if isinstance(record, str):
            yield record
        else:
            yield from (text for text in record if isinstance(text, str))
