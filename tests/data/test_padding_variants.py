"""Answer padding variants (data.padding): every variant reads the same to the decoders, the checker,
the sample records and the metrics."""

import pytest
import torch

from dlm_lightning.build import build, build_module
from dlm_lightning.data.padding import after_first_end, answer_lengths, canonical, pad_answer
from dlm_lightning.errors import ConfigError
from dlm_lightning.metrics.collapse import CollapseMetrics
from dlm_lightning.sample_records import sample_records
from suite_helpers import TINY, compose_config


@pytest.fixture(autouse=True)
def cheap_counts(monkeypatch):
    """The unigram counts (2000 documents) play no part here; ones keep the DataInfo cheap to build."""
    monkeypatch.setattr("dlm_lightning.data.corpus_datamodule.training_answer_counts",
                        lambda generator, padding, pad_cycle, words: torch.ones(len(words), dtype=torch.float64))


def corpus(padding, *extra):
    return build(compose_config([*TINY, f"data.padding={padding}", *extra]), "data")


def test_pad_answer_variants():
    words = ("a", "b")
    assert pad_answer(words, 5, "E", "eos") == ("a", "b", "E", "E", "E")
    assert pad_answer(words, 5, "E", "excluded") == ("a", "b", "E", "E", "E")
    assert pad_answer(words, 7, "E", "rainbow", 2) == ("a", "b", "E", "[PAD1]", "[PAD2]", "[PAD1]", "[PAD2]")


def test_lengths_and_masks_treat_every_pad_as_the_end():
    answers = torch.tensor([[3, 0, 0, 0], [3, 3, 5, 6], [3, 3, 3, 3]])
    assert answer_lengths(answers, (0, 5, 6)).tolist() == [1, 2, 4]
    assert after_first_end(answers, (0, 5, 6)).tolist() == [[False, False, True, True],
                                                            [False, False, False, True],
                                                            [False, False, False, False]]
    assert canonical(answers, (5, 6), 0)[1].tolist() == [3, 3, 0, 0]


@pytest.mark.parametrize("padding", ["rainbow", "excluded"])
def test_every_variant_round_trips_to_the_same_text_and_verdict(padding):
    eos_data, other = corpus("eos"), corpus(padding, "data.pad_cycle=3")
    eos_info, info = eos_data.data_info(), other.data_info()
    base, variant = eos_data.dataset("test"), other.dataset("test")
    index = torch.arange(6)
    tokens = torch.stack([variant[i]["input_ids"] for i in range(6)])
    reference = torch.stack([base[i]["input_ids"] for i in range(6)])
    if padding == "rainbow":
        assert info.pad_ids and torch.isin(tokens, torch.tensor(info.pad_ids)).any()
        assert info.vocab_size == eos_info.vocab_size + 3
    else:
        assert torch.equal(tokens, reference) and info.loss_excludes_padding
    records, checks = sample_records(info, tokens, index)
    base_records, base_checks = sample_records(eos_info, reference, index)
    assert [r["answer"] for r in records] == [r["answer"] for r in base_records]
    assert all(c.valid for c in checks) and all(c.valid for c in base_checks)
    # a decoded answer ending at any pad variant (no [EOS] first) is also one answer, cut there
    if padding == "rainbow":
        ended_at_pad = tokens.clone()
        first = answer_lengths(tokens[:, 18:], info.end_ids)
        ended_at_pad[torch.arange(6), 18 + first] = info.pad_ids[1]
        assert [r["answer"] for r in sample_records(info, ended_at_pad, index)[0]] == [r["answer"] for r in records]
    a, b = CollapseMetrics.for_data(info), CollapseMetrics.for_data(eos_info)
    a.update(tokens[:, 18:], tokens[:, 18:])
    b.update(reference[:, 18:], reference[:, 18:])
    assert float(a.compute()["length/mean"]) == pytest.approx(float(b.compute()["length/mean"]))


def test_decoders_ban_every_end_token_before_min_length():
    cfg = compose_config([*TINY, "data.padding=rainbow", "data.pad_cycle=3", "decoder.min_length=40",
                          "decoder.block_length=40"])
    data = build(cfg, "data")
    info = data.data_info()
    torch.manual_seed(0)
    module = build_module(cfg, info).eval()
    prompts = torch.stack([data.dataset("test")[i]["input_ids"][:18] for i in range(4)])
    out = module.decoder.decode(module.decode_context(), prompts, info.answer_length, torch.Generator().manual_seed(0))
    assert not torch.isin(out.tokens[:, 18:], torch.tensor(info.end_ids)).any()


@pytest.mark.parametrize("overrides, key", [
    (["data.padding=zigzag"], "data.padding"),
    (["data.padding=rainbow", "data.pad_cycle=40"], "data.pad_cycle"),
    (["data.padding=rainbow", "data.pad_cycle=0"], "data.pad_cycle"),
    (["data=shakespeare", "+data.padding=rainbow"], "data.padding"),  # packed text has no answer padding
])
def test_bad_padding_settings_name_the_key(overrides, key):
    with pytest.raises(ConfigError) as error:
        build(compose_config([*TINY, *overrides]), "data")
    message = str(error.value)
    assert key in message and "\n" not in message


@pytest.mark.parametrize("padding", ["rainbow", "excluded"])
def test_the_portable_data_facts_keep_the_padding(padding):
    """What a checkpoint or an export carries: a loaded rainbow run must still read its pads as ends."""
    import dataclasses

    from dlm_lightning.data.portable import info_from_dict, info_to_dict

    info = corpus(padding).data_info()
    loaded = info_from_dict(info_to_dict(info), info.tokenizer)
    for field in dataclasses.fields(info):
        if field.name not in ("token_counts", "tokenizer"):
            assert getattr(loaded, field.name) == getattr(info, field.name), field.name
    assert torch.equal(loaded.token_counts, info.token_counts.double())
    assert loaded.end_ids == info.end_ids and (len(loaded.pad_ids) == 7) == (padding == "rainbow")
