"""Text sources: hub-style loading through load_dataset on local fixtures, local files, LIMA, Shakespeare."""

from __future__ import annotations

import pytest

from dlm_lightning.data.shakespeare import ShakespeareSource, clean
from dlm_lightning.data.sources import DataSourceError, HFSource
from dlm_lightning.errors import ConfigError
from text_fixtures import dataset_dir, documents, hf_source, lima_file, write_jsonl


def test_a_local_dataset_directory_loads_through_the_hub_code_path(tmp_path):
    source = hf_source(dataset_dir(tmp_path), tmp_path)
    assert list(source.records("train")) == documents(60)
    assert list(source.records("val")) == documents(12, 1000)
    sliced = HFSource(path=source.path, splits={"train": "train[:50%]", "val": "train[50%:75%]",
                                                "test": "train[75%:]"}, hf_cache_dir=str(tmp_path / "hf"))
    parts = [list(sliced.records(split)) for split in ("train", "val", "test")]
    assert parts == [documents(60)[:30], documents(60)[30:45], documents(60)[45:]]


def test_streaming_reads_absolute_slices_and_refuses_percentages(tmp_path):
    folder = dataset_dir(tmp_path)
    source = HFSource(path=str(folder), splits={"train": "train[5:]", "val": "train[:2]", "test": "train[2:5]"},
                      streaming=True, hf_cache_dir=str(tmp_path / "hf"))
    assert list(source.records("val")) == documents(60)[:2]
    assert list(source.records("test")) == documents(60)[2:5]
    assert list(source.records("train")) == documents(60)[5:]
    percent = HFSource(path=str(folder), splits={"train": "train[:50%]", "val": "validation", "test": "test"},
                       streaming=True)
    with pytest.raises(ConfigError, match=r"source\.splits\.train.*absolute slices"):
        list(percent.records("train"))


def test_fields_are_checked_and_can_be_read_together(tmp_path):
    folder = dataset_dir(tmp_path)
    pairs = list(hf_source(folder, tmp_path, field=["title", "text"]).records("test"))
    assert pairs[0] == ("t2000", documents(1, 2000)[0])
    with pytest.raises(ConfigError, match=r"source\.field='body'.*fields: text, title"):
        list(hf_source(folder, tmp_path, field="body").records("train"))


def test_local_text_and_jsonl_files(tmp_path):
    (tmp_path / "notes.txt").write_text("first line\nsecond line\n\nfourth line\n")
    text = HFSource(path="text", data_files={"train": str(tmp_path / "notes.txt")},
                    splits={"train": "train", "val": "train[:1]", "test": "train[1:2]"},
                    hf_cache_dir=str(tmp_path / "hf"))
    assert list(text.records("train")) == ["first line", "second line", "", "fourth line"]
    write_jsonl(tmp_path / "docs.jsonl", [{"body": "alpha"}, {"body": "beta"}])
    json_source = HFSource(path="json", data_files=str(tmp_path / "docs.jsonl"), field="body",
                           splits={"train": "train", "val": "train", "test": "train"},
                           hf_cache_dir=str(tmp_path / "hf"))
    assert list(json_source.records("val")) == ["alpha", "beta"]


def test_lima_records_are_lists_of_turns(tmp_path):
    source = HFSource(path="json", data_files={"train": str(lima_file(tmp_path))}, field="conversations",
                      splits={"train": "train[:80%]", "val": "train[80%:]", "test": "train[80%:]"},
                      hf_cache_dir=str(tmp_path / "hf"))
    first = next(iter(source.records("train")))
    assert isinstance(first, list) and first[0].startswith("Question 0:") and len(first) == 2
    assert list(source.records("val"))[-1] == ["A prompt without an answer"]


def test_missing_inputs_fail_with_one_clear_line(tmp_path):
    splits = {"train": "train", "val": "train", "test": "train"}
    with pytest.raises(DataSourceError, match="data file .*nope.txt' does not exist"):
        HFSource(path="text", data_files={"train": str(tmp_path / "nope.txt")}, splits=splits).fingerprint("train")
    with pytest.raises(DataSourceError, match="dataset directory .* does not exist"):
        list(HFSource(path=str(tmp_path / "absent"), splits=splits).records("train"))
    with pytest.raises(ConfigError, match=r"source\.data_files=None.*text builder reads files"):
        HFSource(path="text", data_files={"train": None}, splits=splits).fingerprint("train")
    with pytest.raises(ConfigError, match=r"source\.splits.*missing: test"):
        HFSource(path="text", data_files="x", splits={"train": "train", "val": "train"})
    folder = dataset_dir(tmp_path)
    with pytest.raises(ConfigError, match=r"source\.splits\.val='valid'.*Unknown split"):
        list(HFSource(path=str(folder), splits={**splits, "val": "valid"}, hf_cache_dir=str(tmp_path / "hf"))
             .records("val"))


def test_an_empty_split_is_an_error(tmp_path):
    source = HFSource(path=str(dataset_dir(tmp_path)), splits={"train": "train[100:]", "val": "validation",
                                                               "test": "test"}, streaming=True)
    with pytest.raises(DataSourceError, match=r"the train split of .* \(train\[100:\]\) is empty"):
        list(source.records("train"))


def test_shakespeare_scenes_split_disjointly_and_read_as_plain_text():
    source = ShakespeareSource()
    splits = {split: list(source.records(split)) for split in ("train", "val", "test")}
    sizes = {split: len(docs) for split, docs in splits.items()}
    assert sizes["train"] > 600 and 15 < sizes["val"] < 80 and 15 < sizes["test"] < 80, sizes
    assert not set(splits["val"]) & set(splits["train"]) and not set(splits["test"]) & set(splits["train"])
    assert sum(len(d) for d in splits["train"]) > 4_000_000  # characters of real English
    assert not any("**" in d or "\\" in d for docs in splits.values() for d in docs)


def test_markdown_cleaning():
    markdown = "### SCENE I. A room.\n\n_Enter HAMLET_\n\n**HAMLET**  \nTo be, or not to be,  \nthat is it.\n\n__\\[Aside]_"
    assert clean(markdown) == "SCENE I. A room.\n\nEnter HAMLET\n\nHAMLET:\nTo be, or not to be,\nthat is it.\n\n[Aside]"
