"""Training throughput of the suite against a plain PyTorch loop, with MFU, memory and data time.

    python -m experiments.bench ['sizes=[tiny,small,medium]'] [rounds=3] [steps=10] [threads=N]

For each model size, the same backbone on the same batches (the real-text data path: cached tokens,
memory-mapped, the suite's sampler and DataLoader) is trained two ways:
  suite  the Lightning Trainer with the run's callbacks and TensorBoard logger, MaskedDiffusionLM's
         training_step (uniform schedule), precision from the trainer config (bf16-mixed);
  plain  a hand-written step: next(DataLoader), autocast, the same masked-diffusion loss written inline
         (SUBS log-probs, 1/t weight), backward, gradient clipping, AdamW, LR schedule.
The two alternate step by step: a callback of the suite's fit times each suite step and then runs and
times one plain step, so a change in machine load (other processes on a shared machine) hits both
alike; each suite step is compared with the plain step right after it. ``rounds`` fits of
``warmup`` + ``steps`` steps each; the first ``warmup`` of each are not timed.
Per step: wall time, this process's CPU time (all threads) and data time (suite: from the end of the
previous step to the start of this one, i.e. Lightning's hooks and fetching the batch; plain: next(loader)).
MFU = achieved model FLOP/s / peak, with training FLOPs per token = 6 x (weights of all linear layers)
+ 12 x layers x seq_len x d_model (attention scores and mixing), and the peak measured here, at the start,
by large matmuls in the same dtype (best of several), on the wall clock and per CPU-second alike.
Peak memory: a short fit of each alone; the process's peak resident set on a CPU (reset before each),
torch.cuda.max_memory_allocated on a GPU. On a GPU it also runs bf16 with the flash and
memory-efficient SDPA kernels. Prints a table and writes JSON (default outputs/bench/bench-<time>.json).
See dlm_lightning/configs/bench.yaml for every key.
"""

from __future__ import annotations

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
from typing import Literal, Optional

import hydra
import lightning as L
import torch
from omegaconf import DictConfig

from dlm_lightning.cli import CONFIG_DIR, compose_config, exit_on_user_error, register_resolvers, run_main
from dlm_lightning.config_types import PositiveInt, check_keys
from dlm_lightning.errors import require

register_resolvers()

SIZES = {  # name -> model overrides
    "tiny": {"d_model": 128, "n_layers": 2, "n_heads": 4},
    "small": {"d_model": 256, "n_layers": 4, "n_heads": 4},
    "medium": {"d_model": 384, "n_layers": 6, "n_heads": 6},
}
DATA = {  # name -> data overrides
    "shakespeare": ["data=shakespeare", "data.layout.seq_len=128"],
    "corpus": ["data=corpus"],
}
SCHEMA = {"sizes": list[str], "dataset": Literal[tuple(DATA)], "batch_size": PositiveInt, "steps": PositiveInt,
          "warmup": int, "rounds": PositiveInt, "threads": Optional[PositiveInt], "out": Optional[str]}


# ---- configuration and the two trainers ---------------------------------------------------------
def config_for(size: str, data: str, batch_size: int, steps: int, attention: str, precision: str):
    model = [f"model.{k}={v}" for k, v in SIZES[size].items()]
    return compose_config(["model=small", *model, f"model.attention={attention}", *DATA[data],
                           f"data.batch_size={batch_size}", f"trainer.precision={precision}",
                           f"trainer.max_steps={steps}", "trainer.max_epochs=1000",
                           "trainer.limit_val_batches=0", "+trainer.enable_model_summary=false",
                           "callbacks.checkpoint=null", "callbacks.progress=null",
                           "+trainer.enable_progress_bar=false"])


class PlainLoop:
    """The same backbone and loss in a hand-written PyTorch training step, on its own DataLoader."""

    def __init__(self, cfg, datamodule, info, device: torch.device, precision: str, total_steps: int):
        from hydra.utils import instantiate

        from dlm_lightning.models.denoiser import Denoiser
        from dlm_lightning.optim import warmup_cosine

        torch.manual_seed(0)
        backbone = instantiate(cfg.model, vocab_size=info.vocab_size, max_seq_len=info.seq_len,
                               time_conditioning=False)
        self.denoiser = Denoiser(backbone, info.mask_id, needs_time=False).to(device)
        options = cfg.module.optimizer
        self.optimizer = torch.optim.AdamW(self.denoiser.parameters(), lr=options.lr, betas=tuple(options.betas),
                                           weight_decay=options.weight_decay)
        self.schedule = warmup_cosine(self.optimizer, total_steps=total_steps,
                                      warmup_steps=cfg.module.lr_schedule.warmup_steps,
                                      min_ratio=cfg.module.lr_schedule.min_ratio)
        self.clip, self.autocast = cfg.trainer.gradient_clip_val, precision.startswith("bf16")
        self.info, self.device = info, device
        datamodule.setup("fit")
        self.loader = iter(datamodule.train_dataloader())

    def step(self) -> tuple[float, float, float]:
        """One training step; returns its (wall, CPU, data) seconds."""
        start, start_cpu = time.perf_counter(), time.process_time()
        x0 = next(self.loader)["input_ids"].to(self.device, non_blocking=True)
        data = time.perf_counter() - start
        batch, length = x0.shape
        prompt, device = self.info.prompt_length, self.device
        t = 1e-3 + (1 - 1e-3) * ((torch.rand((), device=device) + torch.arange(batch, device=device) / batch) % 1)
        masked = torch.rand(x0.shape, device=device) < t[:, None]
        masked[:, :prompt] = False
        z = torch.where(masked, torch.full_like(x0, self.info.mask_id), x0)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.autocast):
            log_probs = self.denoiser(z, t).log_probs
        cross_entropy = -log_probs.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
        loss = torch.where(masked, cross_entropy / t[:, None], 0.0).sum() / (batch * (length - prompt))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.denoiser.parameters(), self.clip)
        self.optimizer.step()
        self.schedule.step()
        _sync(device)
        return time.perf_counter() - start, time.process_time() - start_cpu, data


class PairedSteps(L.Callback):
    """Times every step of a Lightning fit and, after each, one step of the plain loop: the two
    alternate step by step, so a change in machine load hits both alike."""

    def __init__(self, plain: PlainLoop | None):
        self.plain = plain
        self.suite = {"wall": [], "cpu": [], "data": []}
        self.other = {"wall": [], "cpu": [], "data": []}
        self._mark = None  # (wall, cpu) when the previous suite step (and its plain step) ended

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if self._mark is not None:  # since the previous step: Lightning's hooks and fetching this batch
            self._data = time.perf_counter() - self._mark[0]

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        _sync(module.device)
        now, cpu = time.perf_counter(), time.process_time()
        if self._mark is not None:
            for key, value in (("wall", now - self._mark[0]), ("cpu", cpu - self._mark[1]), ("data", self._data)):
                self.suite[key].append(value)
        if self.plain is not None:
            times = self.plain.step()
            if self._mark is not None:  # keep the lists aligned: plain step k ran right after suite step k
                for key, value in zip(("wall", "cpu", "data"), times):
                    self.other[key].append(value)
        self._mark = (time.perf_counter(), time.process_time())


def fit_suite(cfg, datamodule, info, plain: PlainLoop | None) -> PairedSteps:
    """A Lightning fit of the suite (the run's callbacks, a TensorBoard logger), optionally paired."""
    from lightning.pytorch.loggers import TensorBoardLogger

    from dlm_lightning.build import build, build_module
    from dlm_lightning.run.experiment import build_callbacks

    torch.manual_seed(0)
    module = build_module(cfg, info)
    timer = PairedSteps(plain)
    with tempfile.TemporaryDirectory() as run_dir:
        logger = TensorBoardLogger(save_dir=run_dir, name="tensorboard", version="", default_hp_metric=False)
        trainer = build(cfg, "trainer", logger=logger, default_root_dir=run_dir,
                        callbacks=[*build_callbacks(cfg, Path(run_dir)), timer])
        trainer.fit(module, datamodule=datamodule)
    return timer


def peak_memories(cfg, datamodule, info, device: torch.device, precision: str, steps: int = 3) -> dict:
    """Peak memory of a short suite fit and of a short plain loop, each measured alone."""
    reset_peak_memory(device)
    fit_suite(cfg, datamodule, info, plain=None)
    suite = peak_memory(device)
    reset_peak_memory(device)
    plain = PlainLoop(cfg, datamodule, info, device, precision, steps)
    for _ in range(steps):
        plain.step()
    return {"suite": suite, "plain": peak_memory(device)}


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


def make_row(size, precision, attention, cfg, info, batch_size, suite, plain, memory, peaks) -> dict:
    flops, params = training_flops_per_token(cfg, info)
    tokens = batch_size * info.seq_len
    peak = peaks["bf16" if precision.startswith("bf16") else "fp32"]
    row = {"size": size, "params": params, "precision": precision, "attention": attention,
           "batch": batch_size, "seq_len": info.seq_len, "flops_per_token": flops, "steps_timed": len(suite["wall"])}
    for kind, times in (("suite", suite), ("plain", plain)):
        wall, cpu = statistics.median(times["wall"]), statistics.median(times["cpu"])
        row[kind] = {"tokens_per_s": tokens / wall, "tokens_per_cpu_s": tokens / cpu,
                     "mfu": tokens / wall * flops / peak["wall"], "mfu_cpu_time": tokens / cpu * flops / peak["cpu"],
                     "data_ms_per_step": 1000 * statistics.median(times["data"]),
                     "peak_memory_mb": memory[kind], "step_wall_s": times["wall"], "step_cpu_s": times["cpu"]}
    # each suite step is paired with the plain step that ran right after it
    row["suite_over_plain_time"] = statistics.median(s / p for s, p in zip(suite["wall"], plain["wall"]))
    row["suite_over_plain_cpu_time"] = statistics.median(s / p for s, p in zip(suite["cpu"], plain["cpu"]))
    return row


def bench(args: DictConfig) -> None:
    sizes = list(args.sizes)
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
            cfg = config_for(size, args.dataset, args.batch_size, total, attention, precision)
            if datamodule is None:  # one DataModule for all: the same batches for every run
                datamodule = build(cfg, "data")
                info = datamodule.data_info()
            suite, plain = {"wall": [], "cpu": [], "data": []}, {"wall": [], "cpu": [], "data": []}
            for _ in range(args.rounds):  # separate fits, so one unlucky fit does not decide
                paired = fit_suite(cfg, datamodule, info, PlainLoop(cfg, datamodule, info, device, precision, total))
                for mine, theirs in ((suite, paired.suite), (plain, paired.other)):
                    for key in mine:  # drop the warm-up steps of each fit
                        mine[key] += theirs[key][args.warmup:]
            memory = peak_memories(cfg, datamodule, info, device, precision)
            rows.append(make_row(size, precision, attention, cfg, info, args.batch_size, suite, plain, memory, peaks))
            print_row(rows[-1], header=len(rows) == 1)
    peaks_end = {"bf16": matmul_peak(device, torch.bfloat16), "fp32": matmul_peak(device, torch.float32)}
    report = {
        "machine": describe_machine(device), "threads": torch.get_num_threads(), "data": args.dataset,
        "matmul_peak_flops": peaks,
        "matmul_peak_flops_start_end": {"start": peaks, "end": peaks_end},
        "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds, "rows": rows,
        "note": ("MFU against the matmul peak measured at the start (mfu: wall clock; mfu_cpu_time: per second "
                 "of this process's CPU time, achieved and peak alike); suite/plain ratios are medians over "
                 "pairs of consecutive steps"),
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


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="bench")
def _main(cfg: DictConfig) -> None:
    with exit_on_user_error():  # every key checked before the minutes of measuring
        check_keys(cfg, SCHEMA)
        unknown = [s for s in cfg.sizes if s not in SIZES]
        require(not unknown, "sizes", list(cfg.sizes), f"unknown size {unknown[:1]}; choose from {', '.join(SIZES)}")
    bench(cfg)


def main(argv: list[str] | None = None) -> None:
    run_main(_main, "bench", argv)


def print_row(row: dict, header: bool) -> None:
    if header:
        print(f"{'size':<7}{'params':>8} {'precision':<11}{'attn':<10}"
              f"{'suite tok/s':>12}{'plain tok/s':>12}{'suite/plain time':>17}{'(cpu time)':>11}"
              f"{'MFU suite':>10}{'MFU plain':>10}{'(cpu time)':>11}{'data ms suite|plain':>20}{'peak MB':>9}")
    s, p = row["suite"], row["plain"]
    print(f"{row['size']:<7}{row['params'] / 1e6:>7.2f}M {row['precision']:<11}{row['attention']:<10}"
          f"{s['tokens_per_s']:>12.0f}{p['tokens_per_s']:>12.0f}{row['suite_over_plain_time']:>17.3f}"
          f"{row['suite_over_plain_cpu_time']:>11.3f}{100 * s['mfu']:>9.1f}%{100 * p['mfu']:>9.1f}%"
          f"{100 * s['mfu_cpu_time']:>10.1f}%"
          f"{s['data_ms_per_step']:>13.2f} | {p['data_ms_per_step']:<4.2f}{(s['peak_memory_mb'] or 0):>9.0f}", flush=True)


def describe_machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name()
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, no GPU, torch {torch.__version__}"


if __name__ == "__main__":
    main()
