"""Probe a run where its decoder meets the collapse: partially decoded states and the mask count.

    python -m experiments.probe_partial run=<run dir> ['decoder_overrides="decoder=marginal decoder.block_length=40"']
        ['calls=[0,10,20,30]'] [samples=128] ['mask_counts=[10,20,40]'] [seed=0] [out=DIR]

Writes partial.json and partial.md into a new directory (default outputs/probes/partial/<time>) and
prints its path last. Bins: ``near/dFF-LL`` = distance to the nearest visible token, ``prompt/dFF-LL`` =
distance to the prompt end (docs/collapse.md). See dlm_lightning/configs/probe_partial.yaml for every key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import hydra
import torch
from omegaconf import DictConfig

from dlm_lightning.decode_table import build_decoder
from dlm_lightning.cli import CONFIG_DIR, check_overrides, exit_on_user_error, register_resolvers, run_main
from dlm_lightning.config_types import PositiveInt, check_keys
from dlm_lightning.errors import RunDirError, require
from dlm_lightning.launch.names import timestamp
from dlm_lightning.probe.partial import mask_count_sensitivity, probe_partial_states
from dlm_lightning.probe.suite_model import SuiteModel
from dlm_lightning.run.load import load_run

register_resolvers()

SCHEMA = {"run": Optional[str], "decoder_overrides": str, "calls": list[int], "samples": PositiveInt,
          "mask_counts": list[int], "seed": int, "out": Optional[str]}


def markdown(results: dict, sensitivity: dict, settings: dict) -> str:
    lines = ["# Collapse probe of partially decoded states", "", *(f"- {k}: {v}" for k, v in settings.items()), ""]
    for family, title in (("near", "distance to the nearest visible token"), ("prompt", "distance to the prompt end")):
        lines += [f"## P(end) by {title} (after n denoiser calls)", ""]
        bins = sorted({k.split("/")[1] for r in results.values() for k in r if k.startswith(family + "/")})
        lines += ["| calls | masked | " + " | ".join(bins) + " |", "|" + "---|" * (len(bins) + 2)]
        for n, r in sorted(results.items()):
            cells = [f"{r[f'{family}/{b}/p_end']:.3f}" if f"{family}/{b}/p_end" in r else "" for b in bins]
            lines.append(f"| {n} | {r['masked']} | " + " | ".join(cells) + " |")
        lines.append("")
    if sensitivity:
        lines += ["## All-masked probe: mean P(EOS) at positions 1, 5, 10, ... by number of appended masks", ""]
        longest = max(len(v["p_eos"]) for v in sensitivity.values())
        marks = [j for j in [1, *range(5, longest + 1, 5)] if j <= longest]
        lines += ["| masks | " + " | ".join(f"pos {j}" for j in marks) + " |", "|" + "---|" * (len(marks) + 1)]
        for n, v in sorted(sensitivity.items()):
            lines.append(f"| {n} | " + " | ".join(f"{v['p_eos'][j - 1]:.3f}" if j <= n else "" for j in marks) + " |")
    return "\n".join(lines) + "\n"


def probe_partial(cfg: DictConfig) -> Path:
    check_keys(cfg, SCHEMA)
    require(cfg.run is not None, "run", None, "give run=<run directory, or a checkpoint file inside one>")
    check_overrides("decoder_overrides", cfg.decoder_overrides)
    out = Path(cfg.out) if cfg.out else Path("outputs/probes/partial") / timestamp()
    if out.exists() and any(out.iterdir()):
        raise RunDirError(f"out={out} is not empty; choose a new directory")
    run = load_run(cfg.run)
    info = run.info
    dataset = run.datamodule.dataset("test")
    ids = torch.stack([dataset[i]["input_ids"] for i in range(cfg.samples)])
    prompts = ids[:, : info.prompt_length]
    results = probe_partial_states(build_decoder(cfg.decoder_overrides, run), run.module.decode_context(), prompts,
                                   info.answer_length, list(cfg.calls), info.unigram().log(), info.end_ids, cfg.seed)
    sensitivity = {}
    if cfg.mask_counts:
        texts = [info.tokenizer.decode([t for t in row.tolist() if t != info.pad_id]) for row in prompts]
        sensitivity = mask_count_sensitivity(SuiteModel(cfg.run), texts, list(cfg.mask_counts), info.unigram())
    out.mkdir(parents=True, exist_ok=True)
    settings = {"run": cfg.run, "decoder": cfg.decoder_overrides, "test prompts": cfg.samples, "seed": cfg.seed}
    (out / "partial.json").write_text(json.dumps({"settings": settings, "states": results,
                                                  "mask_counts": sensitivity}, indent=2) + "\n")
    (out / "partial.md").write_text(markdown(results, sensitivity, settings))
    return out


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="probe_partial")
def _main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        out = probe_partial(cfg)
    print(out)


def main(argv: list[str] | None = None) -> None:
    run_main(_main, "probe_partial", argv)


if __name__ == "__main__":
    main()
