"""Training-step time of each noise schedule relative to uniform, measured in one process.

    python -m experiments.bench_schedules [model_name=small] [repeats=9] [steps=4] [out=FILE]

One step = forward (bf16 autocast, as trainer.precision=bf16-mixed) + backward + gradient clipping +
AdamW step, on the same default training batch for every schedule. The schedules take turns in rounds
(the order rotates every round), so machine load hits them alike; each round gives one time per schedule
and a ratio to uniform's time in that round, and the table reports medians over rounds, for wall-clock
time and for this process's CPU time (all threads; less sensitive to other processes on a shared
machine). The learnable information schedule (two z_t draws per step) is reported separately, and so is
uniform on a time-conditioned backbone, which splits info's overhead into backbone and loss. Prints a
table, writes JSON. See dlm_lightning/configs/bench_schedules.yaml for every key.
"""

from __future__ import annotations

import json
import statistics
import time
import warnings
from datetime import datetime
from pathlib import Path
from typing import Literal, Optional

import hydra
import torch
from omegaconf import DictConfig

from dlm_lightning.build import build, build_module
from dlm_lightning.cli import (CONFIG_DIR, check_option, compose_config, exit_on_user_error,
                               register_resolvers, run_main)
from dlm_lightning.config_types import PositiveInt, check_keys
from dlm_lightning.models.denoiser import Denoiser

VARIANTS = {  # name -> config overrides
    "uniform": ["schedule=uniform"],
    "adaptive": ["schedule=adaptive"],
    "info": ["schedule=info"],
    "info (learnable)": ["schedule=info", "schedule.learnable=true"],
    "uniform, t-cond. backbone": ["schedule=uniform"],  # the backbone info needs, with uniform's loss
}
TARGETS = {"adaptive": 1.05, "info": 1.10}  # the overhead targets (learnable: reported only)
SCHEMA = {"model_name": str, "repeats": PositiveInt, "steps": PositiveInt, "warmup": int,
          "precision": Literal["bf16", "fp32"], "threads": Optional[PositiveInt], "out": Optional[str]}

register_resolvers()


def _training_step(module, optimizer, batch, autocast: bool) -> None:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = module.training_step(batch, 0)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def bench_schedules(args: DictConfig) -> None:
    warnings.filterwarnings("ignore", message=".*self.log.*")  # training_step logs; no trainer here
    if args.threads:
        torch.set_num_threads(args.threads)
    base = [f"model={args.model_name}", "seed=0"]
    datamodule = build(compose_config(base), "data")
    info = datamodule.data_info()
    batch = next(iter(datamodule.train_dataloader()))
    modules, optimizers = {}, {}
    for name, overrides in VARIANTS.items():
        torch.manual_seed(0)
        cfg = compose_config(base + overrides)
        modules[name] = build_module(cfg, info).train()
        if name.startswith("uniform, t-cond"):
            backbone = build(cfg, "model", vocab_size=info.vocab_size, max_seq_len=info.seq_len, time_conditioning=True)
            modules[name].denoiser = Denoiser(backbone, info.mask_id, needs_time=True)
        optimizers[name] = modules[name].optimizer_factory(params=modules[name].parameters())
    autocast = args.precision == "bf16"
    for name in VARIANTS:
        for _ in range(args.warmup):
            _training_step(modules[name], optimizers[name], batch, autocast)

    names, clocks = list(VARIANTS), {"wall": time.perf_counter, "cpu": time.process_time}
    seconds = {clock: {name: [] for name in names} for clock in clocks}
    ratios = {clock: {name: [] for name in names} for clock in clocks}
    for round_ in range(args.repeats):
        order = names[round_ % len(names):] + names[: round_ % len(names)]
        for name in order:
            start = {clock: read() for clock, read in clocks.items()}
            for _ in range(args.steps):
                _training_step(modules[name], optimizers[name], batch, autocast)
            for clock, read in clocks.items():
                seconds[clock][name].append((read() - start[clock]) / args.steps)
        for clock in clocks:
            for name in names:
                ratios[clock][name].append(seconds[clock][name][-1] / seconds[clock]["uniform"][-1])

    rows = []
    for name in names:
        row = {"schedule": name, "target_ratio": TARGETS.get(name)}
        for clock in clocks:
            ratio = statistics.median(ratios[clock][name])
            row.update({f"{clock}_ms_per_step": 1000 * statistics.median(seconds[clock][name]),
                        f"{clock}_ratio": ratio, f"{clock}_ratio_range": [min(ratios[clock][name]), max(ratios[clock][name])]})
        rows.append(row)
    tokens = batch["input_ids"].numel()
    print(f"training step, model={args.model_name}, batch {tuple(batch['input_ids'].shape)} ({tokens} tokens), "
          f"{args.precision}, torch threads={torch.get_num_threads()}, {args.repeats} rounds x {args.steps} steps; "
          f"medians over rounds")
    print(f"{'schedule':26s} {'wall ms':>9s} {'x uniform':>10s} {'cpu ms':>9s} {'x uniform':>10s} {'target':>8s}")
    for row in rows:
        target = f"<= {row['target_ratio']:.2f}" if row["target_ratio"] else "-"
        print(f"{row['schedule']:26s} {row['wall_ms_per_step']:9.1f} {row['wall_ratio']:10.3f} "
              f"{row['cpu_ms_per_step']:9.1f} {row['cpu_ratio']:10.3f} {target:>8s}")
    default = Path("outputs") / "bench" / f"schedules-{datetime.now():%Y-%m-%d_%H-%M-%S}.json"
    out = Path(args.out) if args.out else default
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": args.model_name, "batch_shape": list(batch["input_ids"].shape),
                               "precision": args.precision, "threads": torch.get_num_threads(),
                               "repeats": args.repeats, "steps": args.steps, "rows": rows,
                               "seconds": seconds, "ratios": ratios}, indent=2) + "\n")
    print(out)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="bench_schedules")
def _main(cfg: DictConfig) -> None:
    with exit_on_user_error():  # every key checked before the minutes of measuring
        check_keys(cfg, SCHEMA)
        check_option("model", cfg.model_name, "model_name")
    bench_schedules(cfg)


def main(argv: list[str] | None = None) -> None:
    run_main(_main, "bench_schedules", argv)


if __name__ == "__main__":
    main()
