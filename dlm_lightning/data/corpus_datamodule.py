"""The embedded corpus as a DataModule: no files, no network, deterministic per (seed, split, index)."""

from __future__ import annotations

from functools import cached_property, lru_cache

import torch
from torch.utils.data import Dataset

from dlm_lightning.data import corpus
from dlm_lightning.data.datamodule import IndexedDataModule, answer_token_counts
from dlm_lightning.data.info import DataInfo
from dlm_lightning.data.padding import check_padding, pad_answer, rainbow_tokens
from dlm_lightning.data.word_tokenizer import word_level_tokenizer
from dlm_lightning.errors import require

# The longest prompt the generator writes ([BOS] ... [SEP]); prompts are left-padded to this.
PROMPT_LENGTH = 18


class CorpusDataset(Dataset):
    def __init__(self, generator: corpus.CorpusGenerator, split: str, vocab: dict[str, int],
                 padding: str = "eos", pad_cycle: int = 0):
        self.generator, self.split, self.vocab = generator, split, vocab
        self.padding, self.pad_cycle = padding, pad_cycle

    def __getitem__(self, index: int) -> dict:
        document = self.generator.document(self.split, index)
        left = (corpus.PAD,) * (PROMPT_LENGTH - len(document.prompt))
        words = tuple(w for w in document.answer if w != corpus.EOS)
        answer = pad_answer(words, self.generator.answer_length, corpus.EOS, self.padding, self.pad_cycle)
        ids = [self.vocab[word] for word in left + document.prompt + answer]
        return {"input_ids": torch.tensor(ids, dtype=torch.long), "index": index}


@lru_cache(maxsize=8)
def _cached_answer_counts(generator: corpus.CorpusGenerator, padding: str, pad_cycle: int,
                          words: tuple[str, ...]) -> torch.Tensor:
    vocab = {word: i for i, word in enumerate(words)}
    dataset = CorpusDataset(generator, "train", vocab, padding, pad_cycle)
    return answer_token_counts(dataset, PROMPT_LENGTH, len(vocab), n=2000)


def training_answer_counts(generator: corpus.CorpusGenerator, padding: str, pad_cycle: int,
                           words: tuple[str, ...]) -> torch.Tensor:
    """The token counts of the first 2000 training answers (the data's unigram law), computed once per
    process for each data setting: the jobs of a sweep share them (a copy: callers may change it)."""
    return _cached_answer_counts(generator, padding, pad_cycle, words).clone()


class CorpusDataModule(IndexedDataModule):
    def __init__(self, seed: int = 0, answer_length: int = 40, max_free_sentences: int = 5,
                 batch_size: int = 128, train_size: int = 25_600, val_size: int = 512,
                 test_size: int = 512, num_workers: int = 0, eval_batch_size: int | None = None,
                 padding: str = "eos", pad_cycle: int = 7):
        super().__init__(batch_size, train_size, val_size, test_size, num_workers, eval_batch_size)
        check_padding(padding, pad_cycle, answer_length)
        self.padding, self.pad_cycle = padding, pad_cycle
        # rainbow pads join the vocabulary only when used, so eos-padded checkpoints keep their vocabulary
        self.pads = rainbow_tokens(pad_cycle) if padding == "rainbow" else ()
        require(max_free_sentences >= 0, "max_free_sentences", max_free_sentences, "must be >= 0")
        needed = corpus.min_answer_length(max_free_sentences)
        require(answer_length >= needed, "answer_length", answer_length,
                f"must be >= {needed} to hold the longest answer with max_free_sentences={max_free_sentences}")
        self.generator = corpus.CorpusGenerator(seed, answer_length, max_free_sentences)
        self.tokenizer = word_level_tokenizer(corpus.VOCABULARY + self.pads, corpus.PAD, corpus.MASK,
                                              corpus.BOS, corpus.SEP, corpus.EOS)
        self.vocab = {word: i for i, word in enumerate(corpus.VOCABULARY + self.pads)}

    def dataset(self, split: str) -> Dataset:
        return CorpusDataset(self.generator, split, self.vocab, self.padding, self.pad_cycle)

    @cached_property
    def _info(self) -> DataInfo:
        vocab = self.vocab
        seq_len = PROMPT_LENGTH + self.generator.answer_length
        counts = training_answer_counts(self.generator, self.padding, self.pad_cycle, tuple(vocab))
        return DataInfo(
            vocab_size=len(vocab), mask_id=vocab[corpus.MASK], pad_id=vocab[corpus.PAD],
            eos_id=vocab[corpus.EOS], prompt_length=PROMPT_LENGTH, seq_len=seq_len,
            special_ids=tuple(vocab[t] for t in corpus.SPECIAL_TOKENS + self.pads), token_counts=counts,
            tokenizer=self.tokenizer, checker=corpus.check, rules=corpus.RULES,
            entities=tuple(city for city in corpus.CITIES if len(city) > 1),
            pad_ids=tuple(vocab[t] for t in self.pads), loss_excludes_padding=self.padding == "excluded",
        )

    def data_info(self) -> DataInfo:
        return self._info
