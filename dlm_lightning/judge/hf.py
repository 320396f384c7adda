"""Any Hugging Face causal LM as the judge, by hub name or local path (the field uses gpt2-large)."""

from __future__ import annotations

import torch

from dlm_lightning.errors import ConfigError, first_line, require
from dlm_lightning.judge.base import Judge, JudgeError, check_causal, require_mauve


class HFJudge(Judge):
    def __init__(self, name: str, batch_size: int = 8, mauve: bool = False, device: str = "cpu"):
        require(isinstance(name, str) and name != "", "name", name, "a hub model name or a local directory")
        require(isinstance(batch_size, int) and batch_size >= 1, "batch_size", batch_size, "an integer >= 1")
        require_mauve(mauve)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name, self.batch_size, self.mauve, self.device = name, batch_size, mauve, device
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(name)
            self.model = AutoModelForCausalLM.from_pretrained(name).to(device).eval()
        except ValueError as error:  # transformers: no causal-LM class for this configuration
            raise JudgeError(f"judge {name} is not a causal language model ({first_line(error)[:120]}); "
                             f"use a causal LM such as gpt2-large") from None
        except OSError as error:
            raise ConfigError("name", name, f"cannot be loaded (offline? use a local directory): "
                                                  f"{first_line(error)[:160]}") from None
        config = self.model.config
        self.context = (getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)
                        or self.tokenizer.model_max_length)
        self.start_id, self.eos_id = self.tokenizer.bos_token_id, self.tokenizer.eos_token_id
        check_causal(self.log_probs, len(self.tokenizer), name)

    def describe(self) -> str:
        return self.name

    def log_probs(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=inputs.to(self.device)).logits.float().log_softmax(dim=-1).cpu()

    def features(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        hidden = self.model(input_ids=inputs.to(self.device), output_hidden_states=True).hidden_states[-1].cpu()
        return hidden[torch.arange(len(lengths)), lengths - 1]
