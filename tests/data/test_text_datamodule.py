"""The real-text DataModule: what it tells the model, deterministic per-pass order, sizes, errors, and a
run through the real entry point whose directory holds a reloadable tokenizer."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from dlm_lightning.data.layouts import PromptAnswer
from dlm_lightning.data.sources import HFSource
from dlm_lightning.errors import ConfigError
from text_fixtures import dataset_dir, lima_file, text_module


def test_data_info_describes_the_tokens(tmp_path):
    module = text_module(tmp_path)
    info = module.data_info()
    tokenizer = info.tokenizer
    assert info.vocab_size == len(tokenizer) and info.seq_len == 16 and info.prompt_length == 0
    assert {info.mask_id, info.pad_id, info.eos_id} <= set(info.special_ids)
    train = np.asarray(module.tokens["train"])
    assert info.token_counts.sum().item() == train.size and info.token_counts[info.mask_id] == 0
    assert info.token_counts[info.eos_id] == (train == info.eos_id).sum()
    assert module.sizes == {"train": len(train), "val": len(module.tokens["val"]), "test": len(module.tokens["test"])}


def test_training_order_is_a_fresh_permutation_each_pass(tmp_path):
    module = text_module(tmp_path)
    module.prepare()
    dataset = module.dataset("train")
    n = len(dataset)
    rows = lambda start: [dataset.row(i) for i in range(start, start + n)]  # noqa: E731
    first, second = rows(0), rows(n)
    assert sorted(first) == sorted(second) == list(range(n)) and first != second
    same_seed, other_seed = text_module(tmp_path).dataset("train"), text_module(tmp_path, seed=1).dataset("train")
    assert second == [same_seed.row(i) for i in range(n, 2 * n)] and first != [other_seed.row(i) for i in range(n)]
    assert torch.equal(dataset[n + 3]["input_ids"], torch.from_numpy(np.asarray(module.tokens["train"][second[3]]).astype(np.int64)))
    val = module.dataset("val")
    assert [val.row(i) for i in range(len(val))] == list(range(len(val)))  # evaluation reads in order
    data = pickle.dumps(dataset)  # what a spawned DataLoader worker receives: the file, not the tokens
    assert len(data) < 1000 and torch.equal(pickle.loads(data)[n + 3]["input_ids"], dataset[n + 3]["input_ids"])


def test_sizes_are_capped_and_checked(tmp_path):
    module = text_module(tmp_path, val_size=10_000, train_size=7)
    module.prepare()
    assert module.sizes["val"] == len(module.tokens["val"]) and module.sizes["train"] == 7
    with pytest.raises(ConfigError, match=r"data\.batch_size=10000 is invalid: must be <= the number of training sequences"):
        text_module(tmp_path, batch_size=10_000).data_info()
    with pytest.raises(ConfigError, match=r"data\.source\.field='body'"):
        text_module(tmp_path, source=HFSource(path=str(dataset_dir(tmp_path)), field="body",
                                              splits={"train": "train", "val": "validation", "test": "test"},
                                              hf_cache_dir=str(tmp_path / "hf"))).data_info()


def test_prompt_answer_data_from_lima_format(tmp_path):
    source = HFSource(path="json", data_files={"train": str(lima_file(tmp_path))}, field="conversations",
                      splits={"train": "train[:70%]", "val": "train[70%:85%]", "test": "train[85%:]"},
                      hf_cache_dir=str(tmp_path / "hf"))
    module = text_module(tmp_path, source=source, layout=PromptAnswer(prompt_length=48, answer_length=40))
    info = module.data_info()
    assert (info.prompt_length, info.seq_len, info.answer_length) == (48, 88, 40)
    train = np.asarray(module.tokens["train"])
    assert (train[:, 0] == info.pad_id).any() and (train[:, -1] == info.eos_id).any()
    assert info.token_counts.sum().item() == train[:, 48:].size  # answer tokens only
    assert module.split_stats["test"]["skipped_no_answer"] == 1  # the prompt-only record


def test_a_sequence_longer_than_the_model_takes_is_refused(tmp_path, compose):
    from dlm_lightning.build import build_module

    info = text_module(tmp_path).data_info()
    cfg = compose(["model=tiny", "+model.max_seq_len=8"])
    with pytest.raises(ConfigError, match=r"data\.seq_len=16 is invalid: must be <= model\.max_seq_len=8"):
        build_module(cfg, info)


def test_a_run_on_local_files_is_self_contained(tmp_path, cli):
    from transformers import AutoTokenizer

    from dlm_lightning.data.tokenizers import encode_batch
    from text_fixtures import documents

    notes = tmp_path / "notes.txt"
    notes.write_text("\n".join(documents(120)) + "\n")
    result = cli("model=tiny", "data=files", f"data.source.data_files.train={notes}",
                 f"data.cache_dir={tmp_path / 'cache'}", "data.tokenizer.vocab_size=300", "data.layout.seq_len=32",
                 "data.variable_length=0.5", "data.batch_size=8", "data.test_size=4", "data.eval_batch_size=8",
                 "trainer.max_epochs=1", "callbacks.progress=null")
    assert result.code == 0, result.stderr[-2000:]
    run_dir = tmp_path / result.last_line
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert np.isfinite(metrics["val/bpt"]) and metrics["global_step"] > 0
    tokenizer = AutoTokenizer.from_pretrained(str(run_dir / "tokenizer"))  # the run needs nothing else
    assert tokenizer.mask_token == "[MASK]" and tokenizer.decode(encode_batch(tokenizer, ["To be, or not"])[0]) == "To be, or not"
    assert len(run_dir.joinpath("samples.jsonl").read_text().splitlines()) == 4
