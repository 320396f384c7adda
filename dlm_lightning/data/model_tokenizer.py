"""The tokenizer of a pretrained model (data/tokenizer=model), so data and backbone agree on every id.

The mask token is the tokenizer's own or the token at an explicit ``mask_id`` (LLaDA's 126336 is in
its vocabulary but not declared as the mask); a tokenizer with neither is refused. Missing padding
falls back to EOS and a missing EOS to SEP (BERT), so no token is added when the model already has
one for the role; only a tokenizer with none gets new entries (the backbone grows its embeddings).
"""

from __future__ import annotations

from pathlib import Path

from dlm_lightning.data.sources import DataSourceError
from dlm_lightning.data.tokenizers import EOS, PAD
from dlm_lightning.errors import ConfigError


class ModelTokenizer:
    def __init__(self, name: str | None, mask_id: int | None = None, trust_remote_code: bool = False,
                 revision: str | None = None, key: str = "model"):
        self.key = key  # where the user sets these options, for error messages (generate: hf)
        self.name, self.mask_id = name, mask_id
        self.options = {"trust_remote_code": trust_remote_code, "revision": revision}

    def load(self, source=None, cache_dir: str | Path | None = None):
        from transformers import AutoTokenizer

        if not isinstance(self.name, str) or not self.name:  # checked on use, so configs build without a model
            raise ConfigError(f"{self.key}.name_or_path", self.name, "data/tokenizer=model reads the tokenizer "
                              "of a pretrained model: set model.name_or_path")
        if self.name.startswith(("/", "./", "../", "~")) and not Path(self.name).expanduser().exists():
            raise DataSourceError(f"model directory {self.name!r} does not exist")
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.name, **self.options)
        except (OSError, ValueError) as error:
            raise DataSourceError(f"cannot load the tokenizer of {self.name!r}: {str(error).splitlines()[0]}") from None
        if not hasattr(tokenizer, "backend_tokenizer"):
            raise DataSourceError(f"the tokenizer of {self.name!r} has no fast (Rust) implementation")
        return with_model_roles(tokenizer, self.mask_id, self.name, self.key)


def with_model_roles(tokenizer, mask_id: int | None, name: str, key: str = "model"):
    if mask_id is not None:
        if not 0 <= mask_id < len(tokenizer):
            raise ConfigError(f"{key}.mask_id", mask_id, f"must be a token id of {name}'s tokenizer, in [0, {len(tokenizer)})")
        tokenizer.add_special_tokens({"mask_token": tokenizer.convert_ids_to_tokens(mask_id)})
    elif tokenizer.mask_token_id is None:
        raise ConfigError(f"{key}.mask_id", None, f"the tokenizer of {name} has no mask token: set "
                          f"{key}.mask_id=<token id> (LLaDA: 126336)")
    if tokenizer.eos_token_id is None:
        tokenizer.add_special_tokens({"eos_token": tokenizer.sep_token or EOS})
    if tokenizer.pad_token_id is None:
        tokenizer.add_special_tokens({"pad_token": tokenizer.eos_token or PAD})
    return tokenizer
