"""Tokenizers: byte-level BPE training, exact round trip, save/reload, caching; pretrained from a path."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from dlm_lightning.data.sources import DataSourceError
from dlm_lightning.data.tokenizers import Pretrained, TrainedBPE, encode_batch, tokenizer_digest
from dlm_lightning.errors import ConfigError
from text_fixtures import SENTENCES, dataset_dir, hf_source


@pytest.fixture
def source(tmp_path):
    return hf_source(dataset_dir(tmp_path), tmp_path)


def test_bpe_trains_round_trips_and_reloads(source, tmp_path):
    tokenizer = TrainedBPE(vocab_size=300).load(source, tmp_path / "cache")
    assert len(tokenizer) <= 300 and len(tokenizer) > 259
    ids = {tokenizer.mask_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id}
    assert len(ids) == 3 and None not in ids
    for text in SENTENCES + ["unseen: Zyzzyva ßæ 漢字\r\n  trailing  "]:
        encoded = encode_batch(tokenizer, [text])[0]
        assert tokenizer.decode(encoded) == text  # byte-level: exact, whatever the text
        assert tokenizer.mask_token_id not in encoded
    tokenizer.save_pretrained(str(tmp_path / "run" / "tokenizer"))  # what a run directory holds
    reloaded = AutoTokenizer.from_pretrained(str(tmp_path / "run" / "tokenizer"))
    assert encode_batch(reloaded, SENTENCES) == encode_batch(tokenizer, SENTENCES)
    assert (reloaded.mask_token_id, reloaded.pad_token_id, reloaded.eos_token_id) == (
        tokenizer.mask_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id)
    assert tokenizer_digest(reloaded) == tokenizer_digest(tokenizer)


def test_bpe_is_cached_by_training_data_and_vocabulary_size(source, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = TrainedBPE(vocab_size=300).load(source, cache)
    calls = []
    original = TrainedBPE._train
    monkeypatch.setattr(TrainedBPE, "_train", lambda self, texts, out: calls.append(1) or original(self, texts, out))
    again = TrainedBPE(vocab_size=300).load(source, cache)
    assert calls == [] and tokenizer_digest(again) == tokenizer_digest(first)
    bigger = TrainedBPE(vocab_size=320).load(source, cache)
    assert calls == [1] and tokenizer_digest(bigger) != tokenizer_digest(first)


def test_bpe_settings_are_checked():
    with pytest.raises(ConfigError, match=r"tokenizer\.vocab_size=100 is invalid"):
        TrainedBPE(vocab_size=100)


def test_pretrained_tokenizer_from_a_path_gains_mask_and_padding(source, tmp_path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    # a tiny GPT-2-like tokenizer saved locally: an end-of-text token, no mask and no padding
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(SENTENCES, trainers.BpeTrainer(
        vocab_size=280, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    plain = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>")
    plain.save_pretrained(str(tmp_path / "gpt2-like"))
    assert AutoTokenizer.from_pretrained(str(tmp_path / "gpt2-like")).mask_token is None

    loaded = Pretrained(str(tmp_path / "gpt2-like")).load(source, tmp_path / "cache")
    assert (loaded.mask_token, loaded.pad_token, loaded.eos_token) == ("[MASK]", "[PAD]", "<|endoftext|>")
    assert len(loaded) == len(plain) + 2 and min(loaded.mask_token_id, loaded.pad_token_id) >= len(plain)
    assert encode_batch(loaded, SENTENCES) == encode_batch(plain, SENTENCES)  # existing ids unchanged
    with pytest.raises(DataSourceError, match="tokenizer directory .*absent' does not exist"):
        Pretrained(str(tmp_path / "absent")).load(source, tmp_path / "cache")
