"""Decode a run's test prompts with several decoder settings; validity beside the collapse metrics.

    python -m experiments.decode_table run=<run dir> ['settings=["decoder=marginal decoder.block_length=40",...]']
        [samples=256] ['seeds=[0,1,2]'] [out=table.md]

Each setting is a string of decoder-group Hydra overrides; the first row is the data's own answers.
Prints the markdown table (mean ± std over decoding seeds) and writes it, with a JSON copy, to ``out``.
See dlm_lightning/configs/decode_table.yaml for every key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import hydra
from omegaconf import DictConfig

from dlm_lightning.cli import CONFIG_DIR, check_overrides, exit_on_user_error, register_resolvers, run_main
from dlm_lightning.config_types import PositiveInt, check_keys
from dlm_lightning.decode_table import decode_table, markdown
from dlm_lightning.errors import require
from dlm_lightning.run.load import load_run

register_resolvers()

SCHEMA = {"run": Optional[str], "settings": list[str], "samples": PositiveInt, "batch_size": PositiveInt,
          "seeds": list[int], "out": Optional[str]}


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="decode_table")
def _main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        check_keys(cfg, SCHEMA)
        require(cfg.run is not None, "run", None, "give run=<run directory, or a checkpoint file inside one>")
        for setting in cfg.settings:
            check_overrides("settings", setting)
        rows = decode_table(load_run(cfg.run), list(cfg.settings), cfg.samples, cfg.batch_size, list(cfg.seeds))
    text = markdown(rows)
    if cfg.out:
        out = Path(cfg.out)
        out.write_text(text + "\n")
        out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    print(text)


def main(argv: list[str] | None = None) -> None:
    run_main(_main, "decode_table", argv)


if __name__ == "__main__":
    main()
