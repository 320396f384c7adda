"""A character-level tokenizer (text8: a-z and space), as a transformers fast tokenizer with the
suite's mask, padding and end-of-sequence tokens; decoding joins characters without spaces."""

from __future__ import annotations

import string
from pathlib import Path

from dlm_lightning.data.tokenizers import EOS, MASK, PAD
from dlm_lightning.errors import require


class Characters:
    def __init__(self, alphabet: str = string.ascii_lowercase + " ", unk_token: str = "[UNK]"):
        require(isinstance(alphabet, str) and len(set(alphabet)) == len(alphabet) > 0, "tokenizer.alphabet",
                alphabet, "a non-empty string of distinct characters")
        self.alphabet, self.unk_token = alphabet, unk_token

    def load(self, source, cache_dir: str | Path):
        from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        vocab = {token: i for i, token in enumerate([PAD, MASK, EOS, self.unk_token, *self.alphabet])}
        core = Tokenizer(models.WordLevel(vocab, unk_token=self.unk_token))
        core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")  # every character a token
        core.decoder = decoders.Fuse()
        return PreTrainedTokenizerFast(tokenizer_object=core, mask_token=MASK, pad_token=PAD, eos_token=EOS,
                                       unk_token=self.unk_token)
