"""Decode text prompts with a suite run, an exported model or a Hugging Face model, with any decoder.

    python -m experiments.generate model=<path or name> prompt="..." [decoder=joint decoder.tokens_per_step=4]
        [gen_length=40] [show_steps=true] [hf.mask_id=126336 hf.trust_remote_code=true]

Prints each prompt and its answer (and, with show_steps=true, the answer before every denoiser call).
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from dlm_lightning.build import build
from dlm_lightning.cli import CONFIG_DIR, config_groups, normalize_group_overrides, register_resolvers
from dlm_lightning.errors import ConfigError, UserError
from dlm_lightning.generate import load_generator

register_resolvers()


def generate(cfg: DictConfig) -> list:
    if not cfg.model:
        raise ConfigError("model", None, "a run directory, an exported model directory, or a Hugging Face model")
    prompts = ([cfg.prompt] if cfg.prompt else []) + list(cfg.prompts or [])
    if not prompts:
        raise ConfigError("prompt", None, 'give prompt="..." or prompts=[...]')
    decoder = build(cfg, "decoder")
    hf = OmegaConf.to_container(cfg.hf, resolve=True)
    generator = load_generator(cfg.model, cfg.checkpoint, cfg.device, hf)
    return generator.generate(prompts, decoder, cfg.gen_length, cfg.seed, cfg.chat_template, cfg.show_steps)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="generate")
def _main(cfg: DictConfig) -> None:
    try:
        results = generate(cfg)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    for result in results:
        print(f"prompt: {result.prompt}")
        for step, state in enumerate(result.states):
            print(f"  step {step}: {state}")
        print(f"answer: {result.answer}  (NFE {result.nfe})")


def main() -> None:
    sys.argv = normalize_group_overrides(sys.argv, config_groups())
    _main()


if __name__ == "__main__":
    main()
