"""Probe a run where its decoder meets the collapse: partially decoded states and the mask count.

    python -m experiments.probe_partial <run dir> [--decoder "decoder=marginal decoder.block_length=40"]
        [--calls 0 10 20 30] [--samples 128] [--mask-counts 10 20 40] [--seed 0] [--out DIR]

Writes partial.json and partial.md into a new directory (default outputs/probes/partial/<time>) and
prints its path last. Bins: ``near/dFF-LL`` = distance to the nearest visible token, ``prompt/dFF-LL`` =
distance to the prompt end (docs/collapse.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from dlm_lightning.decode_table import build_decoder
from dlm_lightning.errors import RunDirError, UserError
from dlm_lightning.launch.names import timestamp
from dlm_lightning.probe.partial import mask_count_sensitivity, probe_partial_states
from dlm_lightning.probe.suite_model import SuiteModel
from dlm_lightning.run.load import load_run
from dlm_lightning.cli import OneLineArgumentParser, positive_int


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


def main(argv: list[str] | None = None) -> None:
    parser = OneLineArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--decoder", default="decoder=marginal decoder.block_length=40",
                        help="decoder-group Hydra overrides")
    parser.add_argument("--calls", type=int, nargs="+", default=[0, 10, 20, 30])
    parser.add_argument("--samples", type=positive_int, default=128, help="test prompts")
    parser.add_argument("--mask-counts", type=int, nargs="*", default=[10, 20, 40])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    try:
        out = args.out or Path("outputs/probes/partial") / timestamp()
        if out.exists() and any(out.iterdir()):
            raise RunDirError(f"--out {out} is not empty; choose a new directory")
        run = load_run(args.run)
        info = run.info
        dataset = run.datamodule.dataset("test")
        ids = torch.stack([dataset[i]["input_ids"] for i in range(args.samples)])
        prompts = ids[:, : info.prompt_length]
        results = probe_partial_states(build_decoder(args.decoder, run), run.module.decode_context(), prompts,
                                       info.answer_length, args.calls, info.unigram().log(), info.end_ids,
                                       args.seed)
        sensitivity = {}
        if args.mask_counts:
            texts = [info.tokenizer.decode([t for t in row.tolist() if t != info.pad_id]) for row in prompts]
            sensitivity = mask_count_sensitivity(SuiteModel(args.run), texts, args.mask_counts, info.unigram())
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"run": args.run, "decoder": args.decoder, "test prompts": args.samples, "seed": args.seed}
    (out / "partial.json").write_text(json.dumps({"settings": settings, "states": results,
                                                  "mask_counts": sensitivity}, indent=2) + "\n")
    (out / "partial.md").write_text(markdown(results, sensitivity, settings))
    print(out)


if __name__ == "__main__":
    main()
