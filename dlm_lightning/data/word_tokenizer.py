"""A word-level Hugging Face tokenizer for a fixed word list (the embedded corpus)."""

from __future__ import annotations

from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast


def word_level_tokenizer(words: tuple[str, ...], pad: str, mask: str, bos: str, sep: str, eos: str,
                         unk: str | None = None) -> PreTrainedTokenizerFast:
    vocab = {word: index for index, word in enumerate(words)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk or pad))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=pad, mask_token=mask, bos_token=bos, sep_token=sep, eos_token=eos,
    )
