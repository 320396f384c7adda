"""Decode text prompts with a suite run, an exported model or a Hugging Face model, with any decoder.

    python -m experiments.generate run=<run or exported dir> 'prompt="..."' [decoder=joint decoder.tokens_per_step=4]
    python -m experiments.generate hf_model=<HF name or dir> 'prompt="..."' [hf.mask_id=...] [gen_length=64]
        [gen_length=40] [show_steps=true]

Prints each prompt and its answer (and, with show_steps=true, the answer before every denoiser call).
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from dlm_lightning.build import build
from dlm_lightning.cli import (CONFIG_DIR, check_or_exit, config_groups, exit_on_user_error,
                               normalize_group_overrides, register_resolvers)
from dlm_lightning.errors import ConfigError, RunDirError
from dlm_lightning.generate import hf_generator, load_generator

register_resolvers()


def generate(cfg: DictConfig) -> list:
    if bool(cfg.run) == bool(cfg.hf_model):
        raise ConfigError("run", cfg.run, "give exactly one of run=<run or exported directory> and "
                          "hf_model=<Hugging Face model>")
    # one prompt or a list; not a `prompts` key, which Hydra would read as the probe's config group
    prompts = [cfg.prompt] if isinstance(cfg.prompt, str) else list(cfg.prompt or [])
    if not prompts or not all(isinstance(p, str) and p for p in prompts):
        raise ConfigError("prompt", cfg.prompt, 'give prompt="..." or a list of texts: \'prompt=["...","..."]\'')
    decoder = build(cfg, "decoder")
    hf = OmegaConf.to_container(cfg.hf, resolve=True)
    if cfg.run:
        if not Path(cfg.run).exists():
            raise RunDirError(f"run={cfg.run}: no such file or directory")
        generator = load_generator(cfg.run, cfg.checkpoint, cfg.device)
    else:
        generator = hf_generator(cfg.hf_model, cfg.device, hf)
    return generator.generate(prompts, decoder, cfg.gen_length, cfg.seed, cfg.chat_template, cfg.show_steps)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="generate")
def _main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        results = generate(cfg)
    for result in results:
        print(f"prompt: {result.prompt}")
        for step, state in enumerate(result.states):
            print(f"  step {step}: {state}")
        print(f"answer: {result.answer}  (NFE {result.nfe})")


def main() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the weight-loading bar would bury the answers
    sys.argv = normalize_group_overrides(sys.argv, config_groups())
    check_or_exit(sys.argv[1:], "generate")
    _main()


if __name__ == "__main__":
    main()
