"""The field's standard small-text configs load on local fixtures (no hub): text8 (characters, 256,
contiguous) and LM1B unpacked (one sentence per row, EOS then PAD)."""

from __future__ import annotations

import random
import zipfile

import numpy as np
import pytest

from dlm_lightning.build import build
from suite_helpers import compose_config
from text_fixtures import dataset_dir, documents


@pytest.fixture
def text8_zip(tmp_path):
    rng = random.Random(0)
    words = ["anarchism", "originated", "as", "a", "term", "of", "abuse", "the", "first"]
    text = " ".join(rng.choice(words) for _ in range(400))[:2000]
    path = tmp_path / "text8.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("text8", text)
    return path, text


def test_text8_reads_characters_in_the_standard_splits(text8_zip, tmp_path):
    path, text = text8_zip
    cfg = compose_config(["data=text8", f"data.source.path={path}", "data.source.train_chars=1200",
                          "data.source.val_chars=400", "data.layout.seq_len=16", f"data.cache_dir={tmp_path / 'c'}",
                          "data.batch_size=8", "data.val_size=null", "data.test_size=null"])
    assert compose_config(["data=text8"]).data.layout.seq_len == 256  # the field's setting
    datamodule = build(cfg, "data")
    info = datamodule.data_info()
    tokenizer = info.tokenizer
    assert info.vocab_size == 4 + 27 and info.prompt_length == 0 and info.seq_len == 16
    assert datamodule.sizes["val"] == 400 // 16 and datamodule.sizes["test"] == 400 // 16
    train, test = datamodule.tokens["train"], datamodule.tokens["test"]
    assert len(train) == 1200 // 16
    assert tokenizer.decode(train[0].tolist()) == text[:16]  # characters, no separators, no EOS
    assert tokenizer.decode(test[1].tolist()) == text[1600 + 16: 1600 + 32]
    assert info.eos_id not in np.asarray(train).ravel()


def test_text8_without_its_file_fails_in_one_line(tmp_path):
    cfg = compose_config(["data=text8", f"data.source.path={tmp_path / 'missing.zip'}",
                          f"data.cache_dir={tmp_path / 'c'}"])
    with pytest.raises(Exception, match=r"text8 file '.*missing.zip' does not exist \(data.source.path\)$"):
        build(cfg, "data").data_info()


def bert_like_tokenizer(path):
    """A lowercasing WordPiece tokenizer over the fixture's words, saved like bert-base-uncased."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordPiece
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for doc in documents(60) for w in pre_tokenizers.BertPreTokenizer().pre_tokenize_str(
        doc.lower()) for w in [w[0]]})
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])}
    core = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    core.normalizer = normalizers.BertNormalizer(lowercase=True)
    core.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]", mask_token="[MASK]",
                            cls_token="[CLS]", sep_token="[SEP]").save_pretrained(path)
    return path


def test_lm1b_unpacked_puts_one_sentence_per_row_then_eos_and_padding(tmp_path):
    folder = dataset_dir(tmp_path)
    cfg = compose_config(["data=lm1b_unpacked", f"data.source.path={folder}", "data.source.name=null",
                          "data.source.revision=null", "data.source.streaming=false",
                          "data.source.splits={train: train, val: validation, test: test}",
                          f"data.tokenizer.name={bert_like_tokenizer(tmp_path / 'bert')}", "data.layout.seq_len=24",
                          f"data.cache_dir={tmp_path / 'c'}", "data.batch_size=8", "data.num_workers=0"])
    assert compose_config(["data=lm1b_unpacked"]).data.tokenizer.name == "bert-base-uncased"
    datamodule = build(cfg, "data")
    info = datamodule.data_info()
    tokenizer, rows = info.tokenizer, np.asarray(datamodule.tokens["train"])
    assert len(rows) == 60  # one row per training document
    for doc, row in zip(documents(60), rows):
        ids = tokenizer(doc, add_special_tokens=False)["input_ids"][:23]
        assert row[: len(ids)].tolist() == ids and row[len(ids)] == info.eos_id
        assert (row[len(ids) + 1:] == info.pad_id).all()
    assert datamodule.split_stats["train"]["truncated"] > 0
