"""Small local fixtures for the real-text tests: a few KB of English as a local dataset directory,
LIMA-format JSONL, and text modules built on them (no network: hub code paths read these files)."""

from __future__ import annotations

import json
from pathlib import Path

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Can brain cells move? Some of them migrate during development.",
    "She sells sea shells by the sea shore, and the shells she sells are surely sea shells.",
    "To be, or not to be: that is the question.",
    "Whether 'tis nobler in the mind to suffer the slings and arrows of outrageous fortune.",
    "A journey of a thousand miles begins with a single step.",
    "All that glitters is not gold; all who wander are not lost.",
    "Naïve café owners serve crème brûlée — with a smile. 😊",
    "Numbers like 3.14159 and 2,718 appear in text too.",
    "Tabs\tand  double spaces\nand new lines must survive a round trip.",
]


def documents(count: int, offset: int = 0) -> list[str]:
    """``count`` distinct documents of one to four sentences each."""
    docs = []
    for i in range(offset, offset + count):
        parts = [SENTENCES[(i * 7 + k * 3) % len(SENTENCES)] for k in range(1 + i % 4)]
        docs.append(f"Document {i}. " + " ".join(parts))
    return docs


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def dataset_dir(root: Path) -> Path:
    """A local dataset directory laid out like a hub dataset repo (train/validation/test JSONL)."""
    folder = root / "dataset"
    folder.mkdir(parents=True, exist_ok=True)
    for name, count, offset in (("train", 60, 0), ("validation", 12, 1000), ("test", 12, 2000)):
        write_jsonl(folder / f"{name}.jsonl",
                    [{"text": doc, "title": f"t{offset + i}"} for i, doc in enumerate(documents(count, offset))])
    return folder


def lima_file(root: Path, count: int = 40) -> Path:
    """JSONL in LIMA's format: {"conversations": [prompt, answer, ...], "source": ...}."""
    records = []
    for i in range(count):
        prompt = f"Question {i}: {SENTENCES[i % len(SENTENCES)]}"
        answer = " ".join(SENTENCES[(i + k) % len(SENTENCES)] for k in range(1 + i % 3))
        records.append({"conversations": [prompt, answer], "source": "stackexchange"})
    records.append({"conversations": ["A prompt without an answer"], "source": "test"})
    return write_jsonl(root / "lima.jsonl", records)


def hf_source(folder: Path, tmp: Path, **options):
    from dlm_lightning.data.sources import HFSource

    return HFSource(path=str(folder), splits={"train": "train", "val": "validation", "test": "test"},
                    hf_cache_dir=str(tmp / "hf"), **options)


def text_module(tmp: Path, source=None, tokenizer=None, layout=None, **options):
    """A TextDataModule on the local dataset directory: BPE of 300 entries, packed sequences of 16."""
    from dlm_lightning.data.layouts import Wrap
    from dlm_lightning.data.text import TextDataModule
    from dlm_lightning.data.tokenizers import TrainedBPE

    source = source or hf_source(dataset_dir(tmp), tmp)
    options = {"batch_size": 4, "cache_dir": str(tmp / "cache"), **options}
    return TextDataModule(source, tokenizer or TrainedBPE(vocab_size=300), layout or Wrap(seq_len=16), **options)
