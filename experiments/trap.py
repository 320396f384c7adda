"""The marginal-trap experiment: sample quality versus tokens per step, per decoder, on any data.

    python -m experiments.trap [--run-dir DIR] [--ks 1 2 4 8] [--decoders marginal joint] [--judge J]
                               [-- OVERRIDES...]

On the corpus: validity and per-rule violations. On real text (e.g. ``-- experiment=shakespeare``):
generative perplexity under ``--judge`` (a run trained with objective=autoregressive, or a Hugging Face
causal LM) with the samples' unigram entropy. Both: the factorisation gap per k and per distance
(``--gap-ks``, ``--gap-distances``; ``--gap-ks`` with no value skips it).

Without ``--run-dir`` it first trains a run with the default settings plus ``head=dependency`` (the
joint decoders need the head; extra Hydra overrides after ``--``). Writes trap.csv, trap.json, trap.md,
trap.png and tensorboard/ into a new directory (default ``outputs/trap/<time>``) and prints its path
last.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dlm_lightning.cli import OneLineArgumentParser, check_option, positive_int
from dlm_lightning.errors import RunDirError, UserError
from dlm_lightning.run_layout import unused_output_dir
from dlm_lightning.runs import load_run
from dlm_lightning.judge.load import load_judge
from dlm_lightning.trap.gap import measure_gap
from dlm_lightning.trap.measure import build_decoders, measure
from dlm_lightning.trap.report import summary, write_all


def train(overrides: list[str]) -> Path:
    command = [sys.executable, "-m", "experiments.run", "head=dependency", "callbacks.progress=null", *overrides]
    print("training:", " ".join(command[2:]), file=sys.stderr)
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise RunDirError(f"training failed (exit {done.returncode}); see its error above")
    return Path(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    parser = OneLineArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, help="a finished run trained with head=dependency (default: train one)")
    parser.add_argument("--ks", type=positive_int, nargs="+", default=[1, 2, 4, 8], help="tokens per step")
    parser.add_argument("--decoders", nargs="+", default=["marginal", "joint", "speculative"],
                        help="dlm_lightning/configs/decoder options; marginal is the baseline of the cost ratio")
    parser.add_argument("--samples", type=positive_int, default=512, help="test prompts decoded per setting")
    parser.add_argument("--batch-size", type=positive_int, default=256)
    parser.add_argument("--seed", type=int, default=0)
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
        judge = load_judge(args.judge, args.judge_batch_size, args.mauve) if args.judge else None
        run = load_run(args.run_dir or train(argv[split + 1:]))
        rows = measure(run, build_decoders(args.decoders, args.ks, run), args.samples, args.batch_size,
                       args.seed, args.repeats, judge)
        gap_rows = (measure_gap(run, args.gap_ks, args.gap_distances, args.samples, args.batch_size, args.seed)
                    if args.gap_ks and run.module.dependency_head is not None else [])
        out.mkdir(parents=True, exist_ok=True)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    settings = {"run": str(run.run_dir), "checkpoint": run.checkpoint.name, "test prompts": args.samples,
                "seed": args.seed, "decoders": " ".join(args.decoders), "judge": judge.describe() if judge else None}
    print(write_all(rows, run.info.rules, settings, out, gap_rows))
    print(summary(rows), file=sys.stderr)
    print(out)


if __name__ == "__main__":
    main()
