"""The embedded corpus: a generator deterministic per (seed, split, index) with disjoint splits, its
checker (accepts every generated document, rejects each rule's violation by name) and its tokenization."""

from __future__ import annotations

import pytest

from dlm_lightning.data import corpus
from dlm_lightning.data.corpus import EOS, SEP, CorpusGenerator, check
from dlm_lightning.data.corpus_datamodule import PROMPT_LENGTH, CorpusDataModule

VALID = ("[BOS] he lives in new york . i like chess . where does he live ? [SEP] "
         "he lives in new york . i like chess . they visited san diego . [EOS] [EOS]").split()


# ---- the generator ----------------------------------------------------------------------------------------
def test_documents_are_a_function_of_seed_split_and_index():
    first, second = CorpusGenerator(seed=3), CorpusGenerator(seed=3)
    forward = [first.document(split, i) for split in ("train", "val", "test") for i in range(40)]
    backward = [second.document(split, i) for split in ("test", "val", "train") for i in reversed(range(40))]
    assert sorted(map(str, forward)) == sorted(map(str, backward))
    assert second.document("val", 17) == first.document("val", 17)  # whatever was generated in between


def test_different_seeds_give_different_documents():
    a, b = CorpusGenerator(seed=0), CorpusGenerator(seed=1)
    differ = sum(a.document("train", i) != b.document("train", i) for i in range(50))
    assert differ >= 45


def test_splits_are_disjoint_by_prompt():
    generator = CorpusGenerator(seed=0)
    prompts = {split: {generator.document(split, i).prompt for i in range(n)}
               for split, n in (("train", 2000), ("val", 300), ("test", 300))}
    assert not prompts["train"] & prompts["val"]
    assert not prompts["train"] & prompts["test"]
    assert not prompts["val"] & prompts["test"]
    for split, group in prompts.items():
        assert {corpus.split_of_prompt(p) for p in group} == {split}
    # the same holds for another seed: the split of a prompt does not depend on the seed
    other = CorpusGenerator(seed=9)
    assert all(corpus.split_of_prompt(other.document("val", i).prompt) == "val" for i in range(50))


def test_documents_have_the_documented_shape():
    generator = CorpusGenerator(seed=0, answer_length=40)
    for i in range(200):
        doc = generator.document("train", i)
        assert doc.prompt[0] == "[BOS]" and doc.prompt[-1] == SEP and len(doc.prompt) <= PROMPT_LENGTH
        assert len(doc.answer) == 40 and doc.answer[-1] == EOS
        assert doc.answer[0] == doc.prompt[1]  # the answer starts by restating the asked-about fact


def test_unknown_split_and_too_short_answer_are_refused():
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        CorpusGenerator().document("dev", 0)
    with pytest.raises(ValueError, match="answer_length=20 < 36"):
        CorpusGenerator(answer_length=20)


# ---- the checker ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_checker_accepts_every_generated_document(split):
    generator = CorpusGenerator(seed=4, max_free_sentences=5)
    for i in range(300):
        result = check(generator.document(split, i).words)
        assert result.valid, (i, result.violations)


def test_checker_accepts_the_hand_written_example_and_ignores_left_padding():
    assert check(VALID).valid
    assert check(["[PAD]"] * 3 + VALID).valid


def _replace(words, old, new, occurrence=1):
    """words with the given occurrence (1-based) of the phrase ``old`` replaced by ``new``."""
    words, old, new = list(words), old.split(), new.split()
    seen = 0
    for i in range(len(words)):
        if words[i: i + len(old)] == old:
            seen += 1
            if seen == occurrence:
                return words[:i] + new + words[i + len(old):]
    raise AssertionError(f"{old} not found")


VIOLATIONS = [
    # (rule, broken document, what the explanation mentions)
    ("structure", [w for w in VALID if w != SEP], "no [SEP]"),
    ("structure", _replace(VALID, "they visited", "they tennis"), "expected"),
    ("structure", _replace(VALID, "chess .", "chess ?", occurrence=2), "expected '.'"),
    ("agreement", _replace(VALID, "i like chess", "i likes chess", occurrence=2), "'i' takes 'like'"),
    ("agreement", _replace(VALID, "they visited san diego", "he like san diego"), "'he' takes 'likes'"),
    ("agreement", _replace(VALID, "he lives", "he live"), "'he' takes 'lives'"),  # in the prompt
    ("entity", _replace(VALID, "san diego", "san york"), "'san york'"),
    ("entity", _replace(VALID, "new york", "los delhi", occurrence=2), "'los delhi'"),
    ("copy", _replace(VALID, "new york", "london", occurrence=2), "must restate"),
    ("copy", _replace(VALID, "he lives in new york", "she lives in new york", occurrence=2), "restate"),
    ("padding", VALID[:-2], "no [EOS]"),
    ("padding", VALID + ["tennis"], "a word follows [EOS]"),
]


@pytest.mark.parametrize("rule, words, mentions", VIOLATIONS,
                         ids=[f"{rule}-{i}" for i, (rule, _, _) in enumerate(VIOLATIONS)])
def test_checker_rejects_each_rule_by_name(rule, words, mentions):
    result = check(words)
    assert not result.valid
    assert result.rules == {rule}, result.violations
    assert any(mentions in message for _, message in result.violations), result.violations


def test_every_rule_has_a_rejection_case():
    assert {rule for rule, _, _ in VIOLATIONS} == set(corpus.RULES)


# ---- tokenization and the DataModule ----------------------------------------------------------------------
def test_vocabulary_and_tokenizer_round_trip():
    module = CorpusDataModule(seed=0, train_size=8, val_size=8, test_size=8, batch_size=4)
    tokenizer = module.tokenizer
    assert corpus.VOCABULARY[: len(corpus.SPECIAL_TOKENS)] == corpus.SPECIAL_TOKENS
    assert len(set(corpus.VOCABULARY)) == len(corpus.VOCABULARY)
    assert (tokenizer.pad_token, tokenizer.mask_token, tokenizer.bos_token, tokenizer.sep_token,
            tokenizer.eos_token) == corpus.SPECIAL_TOKENS
    ids = tokenizer.convert_tokens_to_ids(VALID)
    assert tokenizer(" ".join(VALID), add_special_tokens=False)["input_ids"] == ids
    assert tokenizer.decode(ids).split() == VALID


def test_dataset_items_are_left_padded_documents():
    module = CorpusDataModule(seed=2, answer_length=40, train_size=8, val_size=8, test_size=8, batch_size=4)
    info = module.data_info()
    assert (info.prompt_length, info.seq_len, info.vocab_size) == (PROMPT_LENGTH, PROMPT_LENGTH + 40,
                                                                    len(corpus.VOCABULARY))
    generator = CorpusGenerator(seed=2, answer_length=40)
    for split in ("train", "val", "test"):
        for i in (0, 5):
            item = module.dataset(split)[i]
            words = module.tokenizer.convert_ids_to_tokens(item["input_ids"].tolist())
            document = generator.document(split, i)
            padding = PROMPT_LENGTH - len(document.prompt)
            assert words == ["[PAD]"] * padding + list(document.words) and item["index"] == i


def test_training_data_is_fresh_each_epoch_and_evaluation_data_is_fixed():
    module = CorpusDataModule(seed=0, train_size=8, val_size=6, test_size=6, batch_size=4)
    train, val = module.train_dataloader(), module.val_dataloader()
    epoch0 = [b["index"].tolist() for b in train]
    train.sampler.set_epoch(1)
    epoch1 = [b["index"].tolist() for b in train]
    assert epoch0 == [[0, 1, 2, 3], [4, 5, 6, 7]] and epoch1 == [[8, 9, 10, 11], [12, 13, 14, 15]]
    val.sampler.set_epoch(3)
    assert [i for b in val for i in b["index"].tolist()] == list(range(6))
