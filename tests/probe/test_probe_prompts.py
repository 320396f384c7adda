"""Prompt sources: local files with a configurable field, LIMA through `datasets`, the embedded corpus."""

import json

import pytest

from dlm_lightning.data import corpus
from dlm_lightning.errors import ConfigError, UserError
from dlm_lightning.probe.prompts import CorpusPrompts, DatasetPrompts, FilePrompts
from dlm_lightning.probe.unigram import read_texts

LIMA_ROWS = [
    {"conversations": ["Can brain cells move?", "Yes, some can migrate."], "source": "stackexchange"},
    {"conversations": ["Write a haiku about rain.", "Soft rain on the roof."], "source": "wikihow"},
    {"conversations": ["What is a prime?", "A number with two divisors.", "And 1?", "No."], "source": "multi"},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_jsonl_field_dotted_path_and_limit(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", LIMA_ROWS)
    assert FilePrompts(str(path), field="conversations.0", limit=2)() == [
        "Can brain cells move?", "Write a haiku about rain."]
    assert FilePrompts(str(path), field="source")()[2] == "multi"


def test_json_list_of_strings_with_null_field(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(["first prompt", "second prompt"]))
    assert FilePrompts(str(path), field=None)() == ["first prompt", "second prompt"]


def test_empty_prompt_file_fails_clearly(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(UserError, match=r"prompts.path='.*empty.jsonl' holds no prompts"):
        FilePrompts(str(tmp_path / "empty.jsonl"))()


def test_missing_field_names_the_field_the_record_and_its_keys(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "ok"}, {"question": "no prompt key"}])
    with pytest.raises(UserError) as error:
        FilePrompts(str(path), field="prompt")()
    assert str(error.value) == "prompts.field='prompt': record 2 of p.jsonl has no 'prompt' (it has keys: question)"
    with pytest.raises(UserError, match=r"has no '5' \(it has a list\)"):
        FilePrompts(str(write_jsonl(tmp_path / "l.jsonl", LIMA_ROWS)), field="conversations.5")()


def test_missing_file_and_bad_limit_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="prompts.path='.*nope.jsonl' is invalid: must be an existing"):
        FilePrompts(str(tmp_path / "nope.jsonl"))()
    with pytest.raises(ConfigError, match="limit=0 is invalid"):
        FilePrompts(str(tmp_path / "x.jsonl"), limit=0)


def test_lima_format_through_datasets_load_dataset(tmp_path):
    # the same call as the hub name GAIR/lima, on a local folder holding LIMA's train.jsonl
    folder = tmp_path / "lima"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", LIMA_ROWS)
    source = DatasetPrompts(dataset=str(folder), split="train", limit=2, cache_dir=str(tmp_path / "cache"))
    assert source() == ["Can brain cells move?", "Write a haiku about rain."]
    assert "first 2 rows" in source.describe()
    with pytest.raises(UserError, match="split 'validation'"):
        DatasetPrompts(dataset=str(folder), split="validation", cache_dir=str(tmp_path / "cache"))()


def test_corpus_prompts_are_held_out_words():
    prompts = CorpusPrompts(split="val", limit=5)()
    assert len(prompts) == 5 and len(set(prompts)) > 1
    for text in prompts:
        assert "[BOS]" not in text and text.endswith("live ?")
        assert corpus.split_of_prompt((corpus.BOS, *text.split(), corpus.SEP)) == "val"
    with pytest.raises(ConfigError, match="split='dev' is invalid: one of train, val, test"):
        CorpusPrompts(split="dev")


def test_unigram_texts_from_text_and_jsonl(tmp_path):
    (tmp_path / "t.txt").write_text("a b\n\nc\n")
    assert read_texts(str(tmp_path / "t.txt")) == ["a b", "c"]
    path = write_jsonl(tmp_path / "u.jsonl", [{"text": "x"}, {"body": "y"}])
    with pytest.raises(UserError, match="unigram.field='text': line 2 of u.jsonl has no 'text'"):
        read_texts(str(path), "text")
