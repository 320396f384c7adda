"""The tokenised-data cache: reused when nothing changed, separate when the tokenizer changes, rebuilt
(with a warning) when an entry is corrupt or was made for another key."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from dlm_lightning.data.cache import META, cached
from dlm_lightning.data.layouts import Wrap
from dlm_lightning.data.tokenizers import TrainedBPE
from text_fixtures import text_module


def arrays(module) -> dict[str, np.ndarray]:
    module.prepare()
    return {split: np.asarray(tokens).copy() for split, tokens in module.tokens.items()}


def token_entries(tmp_path) -> list:
    return sorted(p for p in (tmp_path / "cache" / "tokens").iterdir() if p.is_dir())


def refuse_to_pack(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the cache was rebuilt")

    monkeypatch.setattr(Wrap, "pack", fail)


def test_a_second_run_reuses_the_cache(tmp_path, monkeypatch):
    first = arrays(text_module(tmp_path))
    assert len(token_entries(tmp_path)) == 3  # train, val, test
    refuse_to_pack(monkeypatch)
    again = arrays(text_module(tmp_path))
    assert all(np.array_equal(first[s], again[s]) for s in first)


def test_a_changed_tokenizer_gets_its_own_entries_and_the_old_ones_stay_valid(tmp_path, monkeypatch):
    first = arrays(text_module(tmp_path))
    other = arrays(text_module(tmp_path, tokenizer=TrainedBPE(vocab_size=340)))
    assert len(token_entries(tmp_path)) == 6
    assert not np.array_equal(first["train"], other["train"])  # retokenised, not the old tokens
    refuse_to_pack(monkeypatch)
    assert np.array_equal(arrays(text_module(tmp_path))["train"], first["train"])


def test_sequence_length_and_layout_are_part_of_the_key(tmp_path):
    arrays(text_module(tmp_path))
    longer = arrays(text_module(tmp_path, layout=Wrap(seq_len=32)))
    assert longer["train"].shape[1] == 32 and len(token_entries(tmp_path)) == 6


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "other key", "no meta"])
def test_a_damaged_entry_is_detected_and_rebuilt(tmp_path, damage):
    original = arrays(text_module(tmp_path))
    module = text_module(tmp_path)
    module.prepare()
    train_entry = next(e for e in token_entries(tmp_path)
                       if json.loads((e / META).read_text())["key"]["split"] == "train")
    tokens, meta = train_entry / "tokens.bin", train_entry / META
    if damage == "flip a byte":
        data = bytearray(tokens.read_bytes())
        data[len(data) // 2] ^= 0xFF
        tokens.write_bytes(bytes(data))
    elif damage == "truncate":
        tokens.write_bytes(tokens.read_bytes()[:-6])
    elif damage == "other key":
        saved = json.loads(meta.read_text())
        saved["key"]["tokenizer"] = "0" * 20
        meta.write_text(json.dumps(saved))
    else:
        meta.unlink()
    reasons = {"flip a byte": "checksum", "truncate": "checksum", "other key": "another key", "no meta": "meta.json"}
    with pytest.warns(UserWarning, match=f"cache entry .*{train_entry.name}.*unusable.*{reasons[damage]}"):
        rebuilt = arrays(text_module(tmp_path))
    assert np.array_equal(rebuilt["train"], original["train"])


def test_cached_builds_once_and_records_stats(tmp_path):
    builds = []

    def build(out):
        builds.append(1)
        (out / "data.txt").write_text("payload")
        return {"n": 1}

    entry, stats = cached(tmp_path, "things", {"a": 1}, build)
    assert (entry / "data.txt").read_text() == "payload" and stats == {"n": 1}
    assert cached(tmp_path, "things", {"a": 1}, build) == (entry, stats) and builds == [1]
    assert cached(tmp_path, "things", {"a": 2}, build)[0] != entry and builds == [1, 1]
    assert not [p for p in (tmp_path / "things").iterdir() if p.name.startswith(".")]  # no scratch left


def test_concurrent_builders_build_an_entry_once(tmp_path):
    import threading
    import time

    builds, results = [], []

    def build(out):
        builds.append(1)
        time.sleep(0.3)  # long enough for the other builder to arrive and wait on the lock
        (out / "data.txt").write_text("payload")
        return {}

    workers = [threading.Thread(target=lambda: results.append(cached(tmp_path, "things", {"a": 1}, build)))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert builds == [1] and results[0] == results[1]


def test_a_data_file_replaced_with_its_time_kept_is_read_anew(tmp_path):
    # cp -p / rsync -a keep the modification time; datasets' own cache keys local files by path and time
    from text_fixtures import dataset_dir, documents, hf_source, write_jsonl

    folder = dataset_dir(tmp_path)
    train = folder / "train.jsonl"
    before = list(hf_source(folder, tmp_path).records("train"))
    stat = train.stat()
    write_jsonl(train, [{"text": doc, "title": "new"} for doc in documents(60, offset=5000)])
    os.utime(train, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    after = list(hf_source(folder, tmp_path).records("train"))
    assert after == documents(60, offset=5000) != before


def test_a_load_hashes_no_file_whose_time_is_older_than_the_entry(tmp_path, monkeypatch):
    import dlm_lightning.data.cache as cache

    def build(folder):
        (folder / "tokens.bin").write_bytes(b"x" * 100)
        return {}

    entry, _ = cached(tmp_path, "kind", {"k": 1}, build)
    old = (entry / "tokens.bin").stat().st_mtime_ns - 10**9
    os.utime(entry / "tokens.bin", ns=(old, old))  # as if built a second before meta.json was written
    meta = json.loads((entry / META).read_text())
    meta["files"]["tokens.bin"]["mtime_ns"] = old
    (entry / META).write_text(json.dumps(meta))
    monkeypatch.setattr(cache, "file_sha256", lambda path: pytest.fail(f"{path} was hashed on load"))
    assert cached(tmp_path, "kind", {"k": 1}, build)[0] == entry
