"""Training throughput of the suite against a plain PyTorch loop, with MFU, memory and data time.

    python -m experiments.bench [--sizes tiny,small,medium] [--rounds 3] [--steps 20] [--data shakespeare]

For each model size, the same backbone on the same batches (the real-text data path: cached tokens,
memory-mapped, the suite's sampler and DataLoader) is trained two ways, taking turns in every round so
machine load hits both alike:
  suite  the Lightning Trainer with the run's callbacks and TensorBoard logger, MaskedDiffusionLM's
         training_step (uniform schedule), precision from the trainer config (bf16-mixed);
  plain  a hand-written loop: DataLoader, autocast, the same masked-diffusion loss written inline
         (SUBS log-probs, 1/t weight), backward, gradient clipping, AdamW, LR schedule.
Per step it records wall time, this process's CPU time (all threads: less sensitive to other processes
on a shared machine) and data time (suite: from the end of one batch to the start of the next, which
includes fetching it; plain: the time in next(loader)). Tables report medians over rounds.
MFU = achieved model FLOP/s / peak, with training FLOPs per token = 6 * (weights of all linear layers)
+ 12 * layers * seq_len * d_model (attention scores and mixing), and the peak measured here by large
matmuls in the same dtype (best of several, before and after the runs). Peak memory: the process's peak
resident set (CPU, reset before each run) or torch.cuda.max_memory_allocated (GPU).
On a GPU it also runs bf16 with the flash and memory-efficient SDPA kernels.
Prints a table and writes JSON (default outputs/bench/bench-<time>.json).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import tempfile
import time
import warnings
from datetime import datetime
from pathlib import Path

import lightning as L
import torch

SIZES = {  # name -> model overrides
    "tiny": {"d_model": 128, "n_layers": 2, "n_heads": 4},
    "small": {"d_model": 256, "n_layers": 4, "n_heads": 4},
    "medium": {"d_model": 384, "n_layers": 6, "n_heads": 6},
}
DATA = {  # name -> data overrides
    "shakespeare": ["data=shakespeare", "data.layout.seq_len=128"],
    "corpus": ["data=corpus"],
}


# ---- configuration and the two trainers ---------------------------------------------------------
def compose_config(overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from dlm_lightning.cli import CONFIG_DIR, register_resolvers

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=overrides)


def config_for(size: str, data: str, batch_size: int, steps: int, attention: str, precision: str):
    model = [f"model.{k}={v}" for k, v in SIZES[size].items()]
    return compose_config(["model=small", *model, f"model.attention={attention}", *DATA[data],
                           f"data.batch_size={batch_size}", f"trainer.precision={precision}",
                           f"+trainer.max_steps={steps}", "trainer.max_epochs=1000",
                           "+trainer.limit_val_batches=0", "+trainer.enable_model_summary=false",
                           "callbacks.checkpoint=null", "callbacks.progress=null",
                           "+trainer.enable_progress_bar=false"])


class StepTimer(L.Callback):
    """Wall, CPU and data time of every training step of a Lightning fit."""

    def __init__(self):
        self.wall, self.cpu, self.data = [], [], []
        self._last = self._last_cpu = None

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if self._last is not None:  # since the previous step ended: fetching this batch, hooks
            self.data.append(time.perf_counter() - self._last)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        _sync(module.device)
        now, cpu = time.perf_counter(), time.process_time()
        if self._last is not None:
            self.wall.append(now - self._last)
            self.cpu.append(cpu - self._last_cpu)
        self._last, self._last_cpu = now, cpu


def run_suite(cfg, datamodule, info, steps: int, warmup: int) -> dict:
    from lightning.pytorch.loggers import TensorBoardLogger

    from dlm_lightning.build import build, build_module
    from dlm_lightning.experiment import build_callbacks

    torch.manual_seed(0)
    module = build_module(cfg, info)
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as run_dir:
        logger = TensorBoardLogger(save_dir=run_dir, name="tensorboard", version="", default_hp_metric=False)
        trainer = build(cfg, "trainer", logger=logger, default_root_dir=run_dir,
                        callbacks=[*build_callbacks(cfg, Path(run_dir)), timer])
        reset_peak_memory(module.device)
        trainer.fit(module, datamodule=datamodule)
        memory = peak_memory(trainer.strategy.root_device)
    return summarise(timer.wall[warmup:], timer.cpu[warmup:], timer.data[warmup:], memory)


def run_plain(cfg, datamodule, info, steps: int, warmup: int, device: torch.device, precision: str) -> dict:
    """The same backbone and loss in a hand-written PyTorch loop."""
    from hydra.utils import instantiate

    from dlm_lightning.models.denoiser import Denoiser
    from dlm_lightning.optim import warmup_cosine

    torch.manual_seed(0)
    backbone = instantiate(cfg.model, vocab_size=info.vocab_size, max_seq_len=info.seq_len, time_conditioning=False)
    denoiser = Denoiser(backbone, info.mask_id, needs_time=False).to(device)
    optimizer = torch.optim.AdamW(denoiser.parameters(), lr=cfg.module.optimizer.lr,
                                  betas=tuple(cfg.module.optimizer.betas),
                                  weight_decay=cfg.module.optimizer.weight_decay)
    schedule = warmup_cosine(optimizer, total_steps=steps, warmup_steps=cfg.module.lr_schedule.warmup_steps,
                             min_ratio=cfg.module.lr_schedule.min_ratio)
    autocast = precision.startswith("bf16")
    datamodule.setup("fit")
    loader = iter(datamodule.train_dataloader())
    wall, cpu, data = [], [], []
    reset_peak_memory(device)
    _sync(device)
    last, last_cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        fetch = time.perf_counter()
        batch = next(loader)
        x0 = batch["input_ids"].to(device, non_blocking=True)
        data.append(time.perf_counter() - fetch)
        batch_size, length = x0.shape
        t = 1e-3 + (1 - 1e-3) * ((torch.rand((), device=device) + torch.arange(batch_size, device=device) / batch_size) % 1)
        masked = torch.rand(x0.shape, device=device) < t[:, None]
        masked[:, : info.prompt_length] = False
        z = torch.where(masked, torch.full_like(x0, info.mask_id), x0)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            log_probs = denoiser(z, t).log_probs
        cross_entropy = -log_probs.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
        loss = (torch.where(masked, cross_entropy / t[:, None], 0.0)).sum() / (batch_size * (length - info.prompt_length))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(denoiser.parameters(), cfg.trainer.gradient_clip_val)
        optimizer.step()
        schedule.step()
        _sync(device)
        now, now_cpu = time.perf_counter(), time.process_time()
        wall.append(now - last)
        cpu.append(now_cpu - last_cpu)
        last, last_cpu = now, now_cpu
    return summarise(wall[warmup:], cpu[warmup:], data[warmup:], peak_memory(device))


def summarise(wall, cpu, data, memory) -> dict:
    return {"step_s": statistics.median(wall), "step_cpu_s": statistics.median(cpu),
            "data_s": statistics.median(data), "peak_memory_mb": memory, "steps_timed": len(wall)}


# ---- machine measurements -----------------------------------------------------------------------
def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def reset_peak_memory(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    else:
        try:  # Linux: writing 5 resets the peak resident set size (VmHWM)
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass


def peak_memory(device) -> float | None:
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def matmul_peak(device: torch.device, dtype: torch.dtype, sizes=(1024, 2048), repeats: int = 5) -> dict:
    """Best FLOP/s of square matmuls on this machine (what MFU is measured against), per second of
    wall time and per second of this process's CPU time."""
    best = {"wall": 0.0, "cpu": 0.0}
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        a @ b  # warm-up
        for _ in range(repeats):
            _sync(device)
            start, start_cpu = time.perf_counter(), time.process_time()
            a @ b
            _sync(device)
            best["wall"] = max(best["wall"], 2 * n**3 / (time.perf_counter() - start))
            best["cpu"] = max(best["cpu"], 2 * n**3 / max(time.process_time() - start_cpu, 1e-9))
    return best


def training_flops_per_token(cfg, info) -> tuple[float, int]:
    """6 x linear-layer weights (forward + backward) + 12 x layers x seq_len x d_model (attention)."""
    from hydra.utils import instantiate

    backbone = instantiate(cfg.model, vocab_size=info.vocab_size, max_seq_len=info.seq_len, time_conditioning=False)
    linear = sum(m.weight.numel() for m in backbone.modules() if isinstance(m, torch.nn.Linear))
    params = sum(p.numel() for p in backbone.parameters())
    return 6 * linear + 12 * len(backbone.blocks) * info.seq_len * backbone.d_model, params


# ---- the benchmark ------------------------------------------------------------------------------
def variants(device: torch.device) -> list[tuple[str, str]]:
    """(precision, attention kernel) pairs to measure on this device."""
    if device.type == "cuda":
        return [("bf16-mixed", "default"), ("bf16-mixed", "flash"), ("bf16-mixed", "efficient")]
    return [("bf16-mixed", "math")]


def make_row(size, precision, attention, cfg, info, batch_size, results, peaks) -> dict:
    flops, params = training_flops_per_token(cfg, info)
    tokens = batch_size * info.seq_len
    peak = peaks["bf16" if precision.startswith("bf16") else "fp32"]
    row = {"size": size, "params": params, "precision": precision, "attention": attention,
           "batch": batch_size, "seq_len": info.seq_len, "flops_per_token": flops}
    for kind, runs in results.items():
        wall = statistics.median(r["step_s"] for r in runs)
        cpu = statistics.median(r["step_cpu_s"] for r in runs)
        row[kind] = {"tokens_per_s": tokens / wall, "tokens_per_cpu_s": tokens / cpu,
                     "mfu": tokens / wall * flops / peak["wall"], "mfu_cpu_time": tokens / cpu * flops / peak["cpu"],
                     "data_ms_per_step": 1000 * statistics.median(r["data_s"] for r in runs),
                     "peak_memory_mb": max((r["peak_memory_mb"] or 0) for r in runs) or None, "rounds": runs}
    pairs = list(zip(results["suite"], results["plain"]))
    row["suite_over_plain_time"] = statistics.median(s["step_s"] / p["step_s"] for s, p in pairs)
    row["suite_over_plain_cpu_time"] = statistics.median(s["step_cpu_s"] / p["step_cpu_s"] for s, p in pairs)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="tiny,small,medium", help=f"comma-separated, from {', '.join(SIZES)}")
    parser.add_argument("--data", default="shakespeare", choices=sorted(DATA))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--rounds", type=int, default=3, help="suite and plain take turns this many times")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out", default=None, help="JSON file (default outputs/bench/bench-<time>.json)")
    args = parser.parse_args()
    sizes = args.sizes.split(",")
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown size {unknown[0]!r}; choose from {', '.join(SIZES)}")
    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    total = args.steps + args.warmup

    from dlm_lightning.build import build

    peaks = {"bf16": matmul_peak(device, torch.bfloat16), "fp32": matmul_peak(device, torch.float32)}
    rows, datamodule, info = [], None, None
    for size in sizes:
        for precision, attention in variants(device):
            cfg = config_for(size, args.data, args.batch_size, total, attention, precision)
            if datamodule is None:  # one DataModule for all: the same batches for every run
                datamodule = build(cfg, "data")
                info = datamodule.data_info()
            results = {"suite": [], "plain": []}
            for round_ in range(args.rounds):  # take turns, alternating who goes first
                for kind in (("suite", "plain") if round_ % 2 == 0 else ("plain", "suite")):
                    results[kind].append(run_suite(cfg, datamodule, info, total, args.warmup) if kind == "suite"
                                         else run_plain(cfg, datamodule, info, total, args.warmup, device, precision))
            rows.append(make_row(size, precision, attention, cfg, info, args.batch_size, results, peaks))
            print_row(rows[-1], header=len(rows) == 1)
    peaks_end = {"bf16": matmul_peak(device, torch.bfloat16), "fp32": matmul_peak(device, torch.float32)}
    report = {
        "machine": describe_machine(device), "threads": torch.get_num_threads(), "data": args.data,
        "matmul_peak_flops": peaks,
        "matmul_peak_flops_start_end": {"start": peaks, "end": peaks_end},
        "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds, "rows": rows,
        "note": ("MFU uses the peak measured at the start of the run (mfu: wall clock; mfu_cpu_time: per "
                 "second of this process's CPU time, for achieved and peak alike); time ratios are medians "
                 "of per-round ratios"),
    }
    out = Path(args.out) if args.out else Path("outputs/bench") / f"bench-{datetime.now():%Y-%m-%d_%H-%M-%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    g = lambda p, clock: f"{p[clock] / 1e9:.0f}"  # noqa: E731
    print(f"matmul peak, GFLOP/s (wall | per CPU-second): bf16 {g(peaks['bf16'], 'wall')} | "
          f"{g(peaks['bf16'], 'cpu')}, fp32 {g(peaks['fp32'], 'wall')} | {g(peaks['fp32'], 'cpu')}; at the end: "
          f"bf16 {g(peaks_end['bf16'], 'wall')} | {g(peaks_end['bf16'], 'cpu')}; "
          f"{report['machine']}, {report['threads']} threads")
    print(out)


def print_row(row: dict, header: bool) -> None:
    if header:
        print(f"{'size':<7}{'params':>8} {'precision':<11}{'attn':<10}"
              f"{'suite tok/s':>12}{'plain tok/s':>12}{'suite/plain time':>17}{'(cpu time)':>11}"
              f"{'MFU suite':>10}{'MFU plain':>10}{'(cpu time)':>11}{'data ms':>9}{'peak MB':>9}")
    s, p = row["suite"], row["plain"]
    print(f"{row['size']:<7}{row['params'] / 1e6:>7.2f}M {row['precision']:<11}{row['attention']:<10}"
          f"{s['tokens_per_s']:>12.0f}{p['tokens_per_s']:>12.0f}{row['suite_over_plain_time']:>17.3f}"
          f"{row['suite_over_plain_cpu_time']:>11.3f}{100 * s['mfu']:>9.1f}%{100 * p['mfu']:>9.1f}%"
          f"{100 * s['mfu_cpu_time']:>10.1f}%"
          f"{s['data_ms_per_step']:>9.2f}{(s['peak_memory_mb'] or 0):>9.0f}", flush=True)


def describe_machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name()
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, no GPU, torch {torch.__version__}"


if __name__ == "__main__":
    main()
