"""The marginal-trap experiment: sample quality versus tokens per step, per decoder, on any data.

    python -m experiments.trap ['seeds=[0,1,2,3,4]' | 'run_dirs=[DIR,DIR]'] ['ks=[1,2,4,8]']
                               ['decoders=[marginal,joint]'] [judge_model=J] ['train_overrides=["k=v"]']

On the corpus: validity and per-rule violations. On real text (e.g. ``'train_overrides=["experiment=shakespeare"]'``):
generative perplexity under ``judge_model`` (a run trained with objective=autoregressive, or a Hugging Face
causal LM) with the samples' unigram entropy. Both: the factorisation gap per k and per distance
(``gap_ks``, ``gap_distances``; ``gap_ks=[]`` skips it).

Seeds are an axis: without ``run_dirs`` it first trains one run per ``seeds`` value with the default
settings plus ``head=dependency`` and ``seed=S`` (the joint decoders need the head; extra experiments.run
overrides in ``train_overrides``); with ``run_dirs`` it takes finished runs. Each run is decoded with its own
training seed, or once per ``decode_seeds`` value. Writes per-seed rows (trap.csv, trap.json) and mean +- std per cell (trap.md, trap.png,
tensorboard/) into a new directory (default ``outputs/trap/<time>``) and prints its path last.
See dlm_lightning/configs/trap.yaml for every key.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Optional

import hydra
from omegaconf import DictConfig, OmegaConf

from dlm_lightning.cli import CONFIG_DIR, check_option, exit_on_user_error, register_resolvers, run_main
from dlm_lightning.config_types import PositiveInt, check_keys
from dlm_lightning.errors import RunDirError, UserError
from dlm_lightning.run.layout import unused_output_dir
from dlm_lightning.run.load import load_run
from dlm_lightning.judge.load import load_judge
from dlm_lightning.trap.gap import measure_gap
from dlm_lightning.trap.measure import build_decoders, measure
from dlm_lightning.trap.report import summary, write_all

register_resolvers()

SCHEMA = {"run_dirs": Optional[list[str]], "seeds": Optional[list[int]], "decode_seeds": Optional[list[int]],
          "ks": list[PositiveInt], "decoders": list[str], "samples": PositiveInt, "batch_size": PositiveInt,
          "repeats": int, "out": Optional[str], "judge_model": Optional[str], "judge_batch_size": int,
          "mauve": bool, "gap_ks": list[int], "gap_distances": list[int], "train_overrides": list[str]}


def train(overrides: list[str], seed: int) -> Path:
    command = [sys.executable, "-m", "experiments.run", "head=dependency", "callbacks.progress=null", *overrides,
               f"seed={seed}"]
    print("training:", " ".join(command[2:]), file=sys.stderr)
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise RunDirError(f"training failed (exit {done.returncode}); see its error above")
    return Path(done.stdout.strip().splitlines()[-1])


def without_seeds(cfg) -> object:
    """The run's config with every ``seed`` key removed: what replicates of one setting share."""
    def strip(node):
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "seed"}
        return [strip(v) for v in node] if isinstance(node, list) else node
    return strip(OmegaConf.to_container(cfg, resolve=False))


def trap(cfg: DictConfig) -> None:
    check_keys(cfg, SCHEMA)
    args = OmegaConf.to_container(cfg, resolve=True)
    for name in args["decoders"]:
        check_option("decoder", name, "decoders")
    out = unused_output_dir(Path(args["out"]) if args["out"] else None, "trap")
    if args["run_dirs"] and args["seeds"] is not None:
        raise UserError("seeds trains new runs; with run_dirs each run's own seed is used (give one or the other)")
    if any(o.split("=", 1)[0].lstrip("+~") == "seed" for o in args["train_overrides"]):
        raise UserError("give training seeds with seeds=[...], not as a seed= override in train_overrides")
    seeds = args["seeds"]
    if seeds is not None and len(set(seeds)) < len(seeds):
        raise UserError(f"seeds={seeds} repeats a seed; give each seed once")
    judge = load_judge(args["judge_model"], args["judge_batch_size"], args["mauve"]) if args["judge_model"] else None
    run_dirs = args["run_dirs"] or [train(args["train_overrides"], seed) for seed in seeds or [0]]
    loaded = [load_run(run_dir) for run_dir in run_dirs]
    seen: dict[int, Path] = {}
    for run in loaded:
        if without_seeds(run.cfg) != without_seeds(loaded[0].cfg):
            raise UserError(f"run_dirs: {run.run_dir} was trained with another config than {loaded[0].run_dir} "
                            "(beyond the seed); the seeds of one trap must be replicates of one config")
        if int(run.cfg.seed) in seen:
            raise UserError(f"run_dirs: {seen[int(run.cfg.seed)]} and {run.run_dir} were both trained with "
                            f"seed {run.cfg.seed}; each seed is one replicate, give runs of different seeds")
        seen[int(run.cfg.seed)] = run.run_dir
    rows, gap_rows, runs = [], [], []
    for run in loaded:
        seed = int(run.cfg.seed)
        built = build_decoders(args["decoders"], args["ks"], run)
        for decode_seed in args["decode_seeds"] or [seed]:
            rows += [{"seed": seed, "decode_seed": decode_seed, **row} for row in
                     measure(run, built, args["samples"], args["batch_size"], decode_seed, args["repeats"], judge)]
        if args["gap_ks"] and run.module.dependency_head is not None:
            gap_rows += [{"seed": seed, **row} for row in measure_gap(run, args["gap_ks"], args["gap_distances"],
                                                                      args["samples"], args["batch_size"], seed)]
        runs.append(f"{run.run_dir} ({run.checkpoint.name}, seed {seed})")
    out.mkdir(parents=True, exist_ok=True)
    settings = {"runs": "; ".join(runs), "test prompts": args["samples"], "decoders": " ".join(args["decoders"]),
                "judge": judge.describe() if judge else None}
    print(write_all(rows, loaded[0].info.rules, settings, out, gap_rows))
    for line in summary(rows):
        print(line, file=sys.stderr)
    print(out)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="trap")
def _main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        trap(cfg)


def main(argv: list[str] | None = None) -> None:
    run_main(_main, "trap", argv)


if __name__ == "__main__":
    main()
