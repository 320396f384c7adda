"""A corpus unigram distribution from a local text source, tokenised with the probed model's tokenizer.

Used when the model's training data is unknown (Hugging Face models). Counts are add-one smoothed
over the model's output vocabulary, as ``DataInfo.unigram`` does for runs of this suite, so every
KL is finite; the mask token gets probability 0 (it is never predicted).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from dlm_lightning.errors import ConfigError, UserError
from dlm_lightning.probe.prompts import get_field


def read_texts(path: str, field: str | None = "text", limit: int | None = None) -> list[str]:
    """Lines of a text file, or one field of each record of a .jsonl file."""
    source = Path(path)
    if not source.is_file():
        raise ConfigError("unigram.path", path, "must be an existing text (.txt, .md) or .jsonl file")
    lines = [line for line in source.read_text().splitlines() if line.strip()][:limit]
    texts = lines
    if source.suffix == ".jsonl":
        where = "line {} of " + source.name
        texts = [get_field(json.loads(line), field, where.format(i + 1), "unigram.field") if field
                 else json.loads(line) for i, line in enumerate(lines)]
    if not texts:
        raise UserError(f"unigram.path={path!r} holds no text")
    return texts


def unigram_from_texts(texts: list[str], tokenizer, vocab_size: int, mask_id: int) -> torch.Tensor:
    counts = torch.zeros(vocab_size, dtype=torch.float64)
    for start in range(0, len(texts), 256):
        for ids in tokenizer(texts[start:start + 256], add_special_tokens=False)["input_ids"]:
            counts += torch.bincount(torch.tensor(ids, dtype=torch.long), minlength=vocab_size)[:vocab_size].double()
    counts += 1.0
    counts[mask_id] = 0.0
    return counts / counts.sum()
