"""Layouts: packed sequences lose and duplicate no token and put EOS after every document; prompt ->
answer rows are left-padded prompts and EOS-padded answers; variable-length crops."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from dlm_lightning.data.collate import VariableLengthCollate
from dlm_lightning.data.layouts import PromptAnswer, Wrap, read_sequences
from dlm_lightning.data.sources import DataSourceError
from dlm_lightning.data.word_tokenizer import word_level_tokenizer

WORDS = tuple(f"w{i}" for i in range(50))


@pytest.fixture(scope="module")
def words_tokenizer():
    """One token per word: ids are predictable, so packed rows can be compared with the documents."""
    specials = ("[PAD]", "[MASK]", "[BOS]", "[SEP]", "[EOS]")
    return word_level_tokenizer(specials + WORDS, *specials)


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer.convert_tokens_to_ids(text.split())


def pack(layout, records, tokenizer, tmp_path):
    stats = layout.pack(records, tokenizer, "fixture", tmp_path / "tokens.bin")
    return np.asarray(read_sequences(tmp_path / "tokens.bin", stats)), stats


def test_wrap_keeps_every_token_once_with_eos_after_each_document(words_tokenizer, tmp_path):
    rng = random.Random(0)
    docs = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 23))) for _ in range(40)]
    docs.insert(5, "   ")  # blank records are not documents
    rows, stats = pack(Wrap(seq_len=16), docs, words_tokenizer, tmp_path)
    eos = words_tokenizer.eos_token_id
    stream = [i for doc in docs if doc.strip() for i in (*ids(words_tokenizer, doc), eos)]
    assert rows.shape == (len(stream) // 16, 16)
    assert rows.ravel().tolist() == stream[: rows.size]  # in order: nothing lost, nothing repeated
    assert stats["dropped_tail_tokens"] == len(stream) - rows.size < 16
    assert stats["documents"] == 40 and stats["tokens"] == len(stream)
    # documents run across sequence boundaries, and EOS closes each one exactly once
    assert any(row[-1] != eos for row in rows)
    documents, current = [], []
    for token in rows.ravel().tolist():
        if token == eos:
            documents.append(current)
            current = []
        else:
            current.append(token)
    expected = [ids(words_tokenizer, d) for d in docs if d.strip()]
    assert documents == expected[: len(documents)] and len(documents) >= len(expected) - 1


def test_wrap_refuses_data_shorter_than_one_sequence(words_tokenizer, tmp_path):
    with pytest.raises(DataSourceError, match=r"fixture has 5 tokens in 2 documents, fewer than one sequence of seq_len=8"):
        pack(Wrap(seq_len=8), ["w1", "w2 w3"], words_tokenizer, tmp_path)


def test_prompt_answer_rows(words_tokenizer, tmp_path):
    pad, eos = words_tokenizer.pad_token_id, words_tokenizer.eos_token_id
    records = [["w1 w2", "w3 w4 w5"],  # padded on both sides
               ("w6 w7 w8 w9", "w10 w11 w12 w13 w14 w15 w16"),  # the answer is truncated
               ["w1 w2 w3 w4 w5", "w6"],  # the prompt is too long: skipped
               ["w1 only a prompt"],  # no answer: skipped
               ["w9", "w8", "a later turn is ignored"]]
    rows, stats = pack(PromptAnswer(prompt_length=4, answer_length=5), records, words_tokenizer, tmp_path)
    t = lambda text: ids(words_tokenizer, text)  # noqa: E731
    assert rows.tolist() == [
        [pad, pad] + t("w1 w2") + t("w3 w4 w5") + [eos, eos],
        t("w6 w7 w8 w9") + t("w10 w11 w12 w13 w14"),
        [pad, pad, pad] + t("w9") + t("w8") + [eos] * 4,
    ]
    assert (stats["sequences"], stats["skipped_long_prompt"], stats["skipped_no_answer"],
            stats["truncated_answer"]) == (3, 1, 1, 1)


def test_prompt_positions_are_never_masked(words_tokenizer, tmp_path):
    from dlm_lightning.masked_diffusion import answer_distance, corrupt
    from dlm_lightning.schedules.uniform import UniformSchedule

    rows, _ = pack(PromptAnswer(prompt_length=4, answer_length=5), [["w1 w2", "w3"], ["w4", "w5 w6"]],
                   words_tokenizer, tmp_path)
    x0 = torch.from_numpy(rows.astype(np.int64))
    mask_id = words_tokenizer.mask_token_id
    z, masked = corrupt(x0, torch.ones(2), UniformSchedule(), answer_distance(9, 4), 4, mask_id, torch.zeros(2, 9))
    assert masked[:, 4:].all() and not masked[:, :4].any()
    assert torch.equal(z[:, :4], x0[:, :4]) and (z[:, 4:] == mask_id).all()


def test_variable_length_crops_a_fraction_of_batches_deterministically():
    items = [{"input_ids": torch.arange(32) + i, "index": i} for i in range(4)]
    never, always = VariableLengthCollate(0.0, 5), VariableLengthCollate(1.0, 5)
    assert never(items)["input_ids"].shape == (4, 32)
    cropped = always(items)["input_ids"]
    assert 5 <= cropped.shape[1] <= 32 and torch.equal(cropped, torch.stack([x["input_ids"] for x in items])[:, : cropped.shape[1]])
    assert always(items)["input_ids"].shape == cropped.shape  # a function of the batch's first index
    some = VariableLengthCollate(0.25, 5, seed=1)
    lengths = [some([{"input_ids": torch.zeros(32, dtype=torch.long), "index": b * 8}])["input_ids"].shape[1]
               for b in range(400)]
    assert 0.18 < np.mean([n < 32 for n in lengths]) < 0.32
    assert min(lengths) >= 5
