"""Tiny randomly initialised Hugging Face models saved locally: a BERT-style AutoModelForMaskedLM and
a custom ``trust_remote_code`` model with an ``auto_map`` (standing in for LLaDA: its own code, a
padded vocabulary, an ``input_embeddings`` argument, no declared mask token, no gradient checkpointing).
Both use the embedded corpus' word-level tokenizer, so they train and decode on the corpus."""

from __future__ import annotations

import json
from pathlib import Path

import torch

CONFIGURATION = '''
from transformers import PretrainedConfig


class TinyDLMConfig(PretrainedConfig):
    model_type = "tiny_dlm"

    def __init__(self, vocab_size=64, d_model=32, n_heads=2, max_sequence_length=128, **kwargs):
        self.vocab_size, self.d_model, self.n_heads = vocab_size, d_model, n_heads
        self.max_sequence_length = max_sequence_length
        super().__init__(**kwargs)
'''

MODELING = '''
import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_tiny_dlm import TinyDLMConfig


class TinyDLMModel(PreTrainedModel):
    config_class = TinyDLMConfig
    base_model_prefix = "tiny"

    def __init__(self, config):
        super().__init__(config)
        self.wte = nn.Embedding(config.vocab_size, config.d_model)
        self.wpe = nn.Embedding(config.max_sequence_length, config.d_model)
        self.block = nn.TransformerEncoderLayer(config.d_model, config.n_heads, 2 * config.d_model,
                                                dropout=0.0, batch_first=True, norm_first=True)
        self.ff_out = nn.Linear(config.d_model, config.vocab_size)
        self.post_init()

    def get_input_embeddings(self):
        return self.wte

    def forward(self, input_ids, input_embeddings=None, attention_mask=None, output_hidden_states=None,
                return_dict=None, **kwargs):
        h = self.wte(input_ids) if input_embeddings is None else input_embeddings
        h = h + self.wpe.weight[: h.shape[1]]
        h = self.block(h)
        return CausalLMOutputWithPast(logits=self.ff_out(h), hidden_states=(h,) if output_hidden_states else None)
'''


def corpus_tokenizer():
    from dlm_lightning.data.corpus_datamodule import CorpusDataModule

    return CorpusDataModule(train_size=8, val_size=8, test_size=8, batch_size=8).tokenizer


def save_tiny_bert(directory: Path, seed: int = 0) -> Path:
    from transformers import BertConfig, BertForMaskedLM

    tokenizer = corpus_tokenizer()
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    BertForMaskedLM(config).save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return Path(directory)


def save_remote_dlm(directory: Path, padded_vocab: int = 7, seed: int = 0) -> Path:
    """Config, code and weights of the remote-code model; its tokenizer declares no mask token."""
    from transformers import AutoConfig

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "configuration_tiny_dlm.py").write_text(CONFIGURATION)
    (directory / "modeling_tiny_dlm.py").write_text(MODELING)
    tokenizer = corpus_tokenizer()
    config = {"model_type": "tiny_dlm", "vocab_size": len(tokenizer) + padded_vocab, "d_model": 32, "n_heads": 2,
              "max_sequence_length": 64, "architectures": ["TinyDLMModel"],
              "auto_map": {"AutoConfig": "configuration_tiny_dlm.TinyDLMConfig",
                           "AutoModel": "modeling_tiny_dlm.TinyDLMModel"}}
    (directory / "config.json").write_text(json.dumps(config))
    from transformers import AutoModel

    torch.manual_seed(seed)
    model = AutoModel.from_config(AutoConfig.from_pretrained(str(directory), trust_remote_code=True),
                                  trust_remote_code=True)
    model.save_pretrained(str(directory))
    tokenizer.mask_token = None  # LLaDA declares no mask token: its id is given explicitly
    tokenizer.save_pretrained(str(directory))
    return directory


def save_causal_lm(directory: Path) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=16, n_layer=1, n_head=2, n_positions=64)).save_pretrained(str(directory))
    corpus_tokenizer().save_pretrained(str(directory))
    return Path(directory)
