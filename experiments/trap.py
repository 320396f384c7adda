"""The marginal-trap experiment: sample quality versus tokens per step, per decoder, on any data.

    python -m experiments.trap [--seeds 0 1 2 3 4 | --run-dir DIR [DIR ...]] [--ks 1 2 4 8]
                               [--decoders marginal joint] [--judge J] [-- OVERRIDES...]

On the corpus: validity and per-rule violations. On real text (e.g. ``-- experiment=shakespeare``):
generative perplexity under ``--judge`` (a run trained with objective=autoregressive, or a Hugging Face
causal LM) with the samples' unigram entropy. Both: the factorisation gap per k and per distance
(``--gap-ks``, ``--gap-distances``; ``--gap-ks`` with no value skips it).

Seeds are an axis: without ``--run-dir`` it first trains one run per ``--seeds`` value with the default
settings plus ``head=dependency`` and ``seed=S`` (the joint decoders need the head; extra Hydra
overrides after ``--``); with ``--run-dir`` it takes finished runs. Each run is decoded with its own
training seed, or once per ``--decode-seeds`` value. Writes per-seed rows (trap.csv, trap.json) and mean +- std per cell (trap.md, trap.png,
tensorboard/) into a new directory (default ``outputs/trap/<time>``) and prints its path last.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from dlm_lightning.cli import OneLineArgumentParser, check_option, positive_int
from dlm_lightning.errors import RunDirError, UserError
from dlm_lightning.run.layout import unused_output_dir
from dlm_lightning.run.load import load_run
from dlm_lightning.judge.load import load_judge
from dlm_lightning.trap.gap import measure_gap
from dlm_lightning.trap.measure import build_decoders, measure
from dlm_lightning.trap.report import summary, write_all


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


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    parser = OneLineArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, nargs="+",
                        help="finished runs trained with head=dependency (default: train one per --seeds value)")
    parser.add_argument("--seeds", type=int, nargs="+", help="training (and decoding) seeds of the runs to train "
                        "(default: 0); with --run-dir each run's own seed is used")
    parser.add_argument("--decode-seeds", type=int, nargs="+",
                        help="decode every run once per seed given (default: once, with the run's own seed)")
    parser.add_argument("--ks", type=positive_int, nargs="+", default=[1, 2, 4, 8], help="tokens per step")
    parser.add_argument("--decoders", nargs="+", default=["marginal", "joint", "joint_rank", "speculative"],
                        help="dlm_lightning/configs/decoder options; marginal is the baseline of the cost ratio")
    parser.add_argument("--samples", type=positive_int, default=512, help="test prompts decoded per setting")
    parser.add_argument("--batch-size", type=positive_int, default=256)
    parser.add_argument("--repeats", type=int, default=3, help="extra timing passes over the first batch")
    parser.add_argument("--out", type=Path, help="a new directory for the results (default: outputs/trap/<time>)")
    parser.add_argument("--judge", help="generative perplexity under this judge: a suite run trained with "
                        "objective=autoregressive, or a Hugging Face causal LM name or path")
    parser.add_argument("--judge-batch-size", type=int, default=16)
    parser.add_argument("--mauve", action="store_true", help="also MAUVE against the true answers (mauve-text)")
    parser.add_argument("--gap-ks", type=int, nargs="*", default=[2, 4, 8], help="factorisation gap: k values")
    parser.add_argument("--gap-distances", type=int, nargs="*", default=[1, 2, 4, 8],
                        help="factorisation gap: distances of position pairs")
    args = parser.parse_args(argv[:split])
    try:
        for name in args.decoders:
            check_option("decoder", name, "--decoders")
        out = unused_output_dir(args.out, "trap")
        if args.run_dir and args.seeds is not None:
            raise UserError("--seeds trains new runs; with --run-dir each run's own seed is used (give one or the other)")
        if any(o.split("=", 1)[0].lstrip("+~") == "seed" for o in argv[split + 1:]):
            raise UserError("give training seeds with --seeds, not as a seed= override")
        if args.seeds is not None and len(set(args.seeds)) < len(args.seeds):
            raise UserError(f"--seeds {' '.join(map(str, args.seeds))} repeats a seed; give each seed once")
        judge = load_judge(args.judge, args.judge_batch_size, args.mauve) if args.judge else None
        run_dirs = args.run_dir or [train(argv[split + 1:], seed) for seed in args.seeds or [0]]
        loaded = [load_run(run_dir) for run_dir in run_dirs]
        seen: dict[int, Path] = {}
        for run in loaded:
            if without_seeds(run.cfg) != without_seeds(loaded[0].cfg):
                raise UserError(f"--run-dir {run.run_dir} was trained with another config than {loaded[0].run_dir} "
                                "(beyond the seed); the seeds of one trap must be replicates of one config")
            if int(run.cfg.seed) in seen:
                raise UserError(f"--run-dir {seen[int(run.cfg.seed)]} and {run.run_dir} were both trained with "
                                f"seed {run.cfg.seed}; each seed is one replicate, give runs of different seeds")
            seen[int(run.cfg.seed)] = run.run_dir
        rows, gap_rows, runs = [], [], []
        for run in loaded:
            seed = int(run.cfg.seed)
            built = build_decoders(args.decoders, args.ks, run)
            for decode_seed in args.decode_seeds or [seed]:
                rows += [{"seed": seed, "decode_seed": decode_seed, **row} for row in
                         measure(run, built, args.samples, args.batch_size, decode_seed, args.repeats, judge)]
            if args.gap_ks and run.module.dependency_head is not None:
                gap_rows += [{"seed": seed, **row} for row in measure_gap(run, args.gap_ks, args.gap_distances,
                                                                          args.samples, args.batch_size, seed)]
            runs.append(f"{run.run_dir} ({run.checkpoint.name}, seed {seed})")
        out.mkdir(parents=True, exist_ok=True)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    settings = {"runs": "; ".join(runs), "test prompts": args.samples, "decoders": " ".join(args.decoders),
                "judge": judge.describe() if judge else None}
    print(write_all(rows, loaded[0].info.rules, settings, out, gap_rows))
    for line in summary(rows):
        print(line, file=sys.stderr)
    print(out)


if __name__ == "__main__":
    main()
