"""Decoding speed and quality together: key/value cache none/prefix/dual, tokens per step, threshold.

    python -m experiments.bench_decode ['lengths=[64,256,1024]'] ['run=["256=outputs/runs/<run>"]']
        [block_decoder=marginal|random] ['decoder_overrides=["decoder.sample_length=true"]']
        ['ks=[1,2,4,8]'] ['caches=[none,prefix,dual]'] [threshold_k=8] ['refresh=[1,2,4]'] [refresh_k=1]
        [block_length=32] [samples=64] [batch_size=32] ['seeds=[0,1,2]'] [out=DIR] ['train_overrides=["k=v"]']

For each answer length, a finished run of the embedded corpus at that length (``run=["A=DIR"]``) or, when
none is given, a fresh one trained with ``experiments.run`` (``train_steps``; extra experiments.run
overrides in ``train_overrides``). Every setting decodes the same test prompts with the same generators; rows
report tokens per second, speed-up against the same decoder without a cache (paired per batch), NFE, ms
per step, peak memory, validity, mean answer length and its bias against the reference answers, and
agreement with the uncached decode's tokens; mean ± std over ``seeds``. On a machine with CUDA the
same rows run again on the GPU in bf16 with PyTorch's flash/efficient attention. Writes
bench_decode.json and bench_decode.md into a new directory (default ``outputs/bench_decode/<time>``) and
prints its path last. See dlm_lightning/configs/bench_decode.yaml for every key.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path
from typing import Literal, Optional

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from dlm_lightning.decode_bench.measure import measure, summarise
from dlm_lightning.decode_bench.report import SUMMARY_KEYS, write
from dlm_lightning.decode_bench.settings import build_decoders, check_decoder_overrides, grid
from dlm_lightning.decode_bench.untrained import untrained_run
from dlm_lightning.errors import RunDirError, require
from dlm_lightning.run.layout import unused_output_dir
from dlm_lightning.models.compile import compile_backbone
from dlm_lightning.run.load import load_run
from dlm_lightning.cli import CONFIG_DIR, exit_on_user_error, register_resolvers, run_main
from dlm_lightning.config_types import PositiveInt, check_keys

register_resolvers()

SCHEMA = {"lengths": list[PositiveInt], "run": list[str], "train_steps": int, "train_batch": PositiveInt,
          "ks": list[int], "caches": list[str], "threshold_k": int, "refresh": list[int], "refresh_k": PositiveInt,
          "block_length": PositiveInt, "samples": PositiveInt, "batch_size": PositiveInt, "seeds": list[int],
          "precision": Literal["fp32", "bf16"], "compile": Optional[str], "no_gpu": bool, "out": Optional[str],
          "train_overrides": list[str], "block_decoder": str, "decoder_overrides": list[str]}


def training_overrides(answer_length: int, steps: int, batch_size: int, samples: int) -> list[str]:
    """A default-model run at this answer length for ``steps`` optimizer steps (a step count, not a time
    limit, so the learning-rate schedule decays over the real run): free sentences fill the answers;
    ten validations (NELBO only: decoding long answers at every validation would cost more than training);
    a cheap end-of-run decode."""
    free = (answer_length - 11) // 5  # corpus.min_answer_length: 11 + 5 per free sentence
    epoch_steps = max(-(-steps // 10), 1)
    return [f"data.answer_length={answer_length}", f"data.max_free_sentences={free}",
            f"data.batch_size={batch_size}", f"data.train_size={epoch_steps * batch_size}", "trainer.max_epochs=-1",
            f"trainer.max_steps={max(steps, 1)}", "data.val_size=32", f"data.test_size={max(samples, 16)}",
            "data.eval_batch_size=32", "module.eval_decode_batches=0", "decoder=marginal",
            "decoder.tokens_per_step=8", "decoder.block_length=32", "decoder.cache=dual", "callbacks.progress=null"]


def train(overrides: list[str]) -> Path:
    command = [sys.executable, "-m", "experiments.run", *overrides]
    print("training:", " ".join(command[2:]), file=sys.stderr)
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise RunDirError(f"training failed (exit {done.returncode}); see its error above")
    return Path(done.stdout.strip().splitlines()[-1])


def parse_runs(items: list[str]) -> dict[int, Path]:
    runs = {}
    for item in items:
        length, _, path = item.partition("=")
        require(length.isdigit() and path != "", "run", item, "LENGTH=RUN_DIR, e.g. 256=outputs/runs/<run>")
        runs[int(length)] = Path(path)
    return runs


def bench_decode(cfg: DictConfig) -> None:
    check_keys(cfg, SCHEMA)
    args = OmegaConf.to_container(cfg, resolve=True)
    require(args["train_steps"] >= 0, "train_steps", args["train_steps"], "steps >= 0 (0: untrained weights)")
    gpu = torch.cuda.is_available() and not args["no_gpu"]
    runs = parse_runs(args["run"])
    check_decoder_overrides(args["decoder_overrides"])  # before any training
    settings = grid(args["ks"], args["caches"], args["threshold_k"] or None, args["refresh"], args["refresh_k"],
                    args["block_decoder"])
    out = unused_output_dir(Path(args["out"]) if args["out"] else None, "bench_decode")
    rows, used = [], {}
    for length in args["lengths"]:
        overrides = [*training_overrides(length, args["train_steps"], args["train_batch"], args["samples"]),
                     *args["train_overrides"]]
        if length in runs:
            run = load_run(runs[length])
        else:  # train_steps=0: untrained weights, for speed rows only
            run = untrained_run(overrides) if args["train_steps"] == 0 else load_run(train(overrides))
        require(run.info.answer_length == length, "run", str(run.run_dir),
                f"its answer length is {run.info.answer_length}, not {length}")
        used[length] = str(run.run_dir)
        built = build_decoders(settings, args["block_length"], length, run.module.denoiser, args["decoder_overrides"])
        samples, batch_size, seeds, precision = args["samples"], args["batch_size"], args["seeds"], args["precision"]
        rows += measure(run, built, samples, batch_size, seeds, "cpu", precision)
        if args["compile"]:  # the same rows again in this process, the backbone compiled
            compile_backbone(run.module.denoiser.backbone, args["compile"])
            rows += measure(run, built, samples, batch_size, seeds, "cpu", precision, f"compiled ({args['compile']})")
        if gpu:
            run.module.denoiser.backbone.attention = "default"  # let PyTorch pick flash/efficient
            rows += measure(run, built, samples, batch_size, seeds, "cuda", "bf16")
    summary = summarise(rows, SUMMARY_KEYS)
    info = {"runs": used, "block_length": args["block_length"], "test prompts": args["samples"], "seeds": args["seeds"],
            "cpu precision": args["precision"], "compile": args["compile"] or "off",
            "decoder overrides": " ".join(args["decoder_overrides"]) or "none",
            "machine": f"{platform.machine()} {platform.processor() or ''} {torch.get_num_threads()} threads".strip(),
            "torch": torch.__version__, "gpu": torch.cuda.get_device_name() if gpu else "none (GPU rows not measured)"}
    out.mkdir(parents=True, exist_ok=True)
    print(write(rows, summary, info, out))
    print(out)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="bench_decode")
def _main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        bench_decode(cfg)


def main(argv: list[str] | None = None) -> None:
    run_main(_main, "bench_decode", argv)


if __name__ == "__main__":
    main()
