"""The marginal-trap table: validity versus tokens per step for the marginal and joint decoders.

    python -m experiments.trap_table [--run-dir DIR] [--ks 1 2 4 8] [--samples 512] [-- OVERRIDES...]

Without ``--run-dir`` it first trains a model with the default settings plus ``head=dependency``
(extra Hydra overrides after ``--``). It then decodes the same test prompts with each decoder at each
tokens-per-step value, with the same random generator per batch, and reports validity, per-rule
violations, committed-then-invalid entities, unigram entropy, NFE and time per denoiser step.
Decoders are interleaved batch by batch (k by k, decoder by decoder), so the per-step cost ratio
against the marginal decoder is a paired, same-run measurement. Writes ``trap_table.csv`` and
``trap_table.json`` to ``--out`` (default: the run directory) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from dlm_lightning.build import build, build_module
from dlm_lightning.cli import CONFIG_DIR, register_resolvers
from dlm_lightning.errors import RunDirError, UserError
from dlm_lightning.metrics.entities import committed_mixed_pairs
from dlm_lightning.metrics.samples import SampleQuality
from dlm_lightning.sample_records import sample_records

BASELINE = "marginal"


def train(overrides: list[str]) -> Path:
    command = [sys.executable, "-m", "experiments.run", "head=dependency", "callbacks.progress=null", *overrides]
    print("training:", " ".join(command[2:]), file=sys.stderr)
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise RunDirError(f"training failed (exit {done.returncode})")
    return Path(done.stdout.strip().splitlines()[-1])


def load(run_dir: Path):
    """The run's data description and its trained module (last checkpoint), in eval mode."""
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    if not checkpoint.exists():
        raise RunDirError(f"--run-dir {run_dir}: no {checkpoint.relative_to(run_dir)}; pass a finished run directory")
    cfg = OmegaConf.load(run_dir / "config.yaml")
    datamodule = build(cfg, "data")
    info = datamodule.data_info()
    if info.checker is None:
        raise RunDirError(f"--run-dir {run_dir}: its data has no checker, so validity is undefined; use data=corpus")
    module = build_module(cfg, info)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    module.on_load_checkpoint(state)  # refuses another vocabulary or model shape, in one line
    module.load_state_dict(state["state_dict"])
    return datamodule, info, module.eval()


def decoders(names: list[str], ks: list[int], info, module) -> dict:
    register_resolvers()
    built = {}
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        for k in ks:
            for name in names:
                cfg = compose("config", overrides=[f"decoder={name}", f"decoder.tokens_per_step={k}"])
                decoder = build(cfg, "decoder")
                decoder.check(info.answer_length)
                decoder.check_head(module.dependency_head)
                built[name, k] = decoder
    return built


def measure(module, info, datamodule, built: dict, samples: int, batch_size: int, seed: int,
            repeats: int) -> list[dict]:
    """Quality over ``samples`` prompts; per-step time over those batches plus ``repeats - 1`` more
    passes over the first batch, every call interleaved with the other decoders'."""
    dataset = datamodule.dataset("test")
    ids = torch.stack([dataset[i]["input_ids"] for i in range(samples)])
    metrics = {key: SampleQuality(info.vocab_size, info.rules, tuple(info.special_ids)) for key in built}
    step_seconds = {key: [] for key in built}
    context = module.decode_context()
    for decoder in built.values():  # warm-up: first calls pay one-off allocation costs
        decoder.decode(context, ids[:8, : info.prompt_length], info.answer_length, torch.Generator().manual_seed(0))
    starts = list(range(0, samples, batch_size))
    for n, start in enumerate(starts + [0] * (repeats - 1)):
        prompts = ids[start: start + batch_size, : info.prompt_length]
        index = torch.arange(start, start + prompts.shape[0])
        for key, decoder in built.items():  # interleaved: same batch, k by k, decoder by decoder
            generator = torch.Generator().manual_seed(seed * 7919 + start)
            out = decoder.decode(context, prompts, info.answer_length, generator)
            step_seconds[key].append(out.seconds / out.nfe)
            if n < len(starts):
                answers = out.tokens[:, info.prompt_length:]
                _, checks = sample_records(info, out.tokens, index)
                entity_errors = committed_mixed_pairs(answers, out.commit_step, module.entity_codes, info.vocab_size)
                metrics[key].update(answers, checks, out.nfe, out.seconds, entity_errors)
    rows = []
    for (name, k), metric in metrics.items():
        values = {m: float(v) for m, v in metric.compute().items()}
        baseline = step_seconds.get((BASELINE, k))
        ratio = (statistics.median(a / b for a, b in zip(step_seconds[name, k], baseline)) if baseline else None)
        rows.append({"decoder": name, "tokens_per_step": k, "samples": samples,
                     "invalid": 1.0 - values["validity"], **values,
                     "ms_per_step": 1000 * statistics.median(step_seconds[name, k]),
                     "step_cost_vs_marginal": ratio})
    return rows


def markdown(rows: list[dict], rules: tuple[str, ...]) -> str:
    head = ["decoder", "tokens/step", "NFE", "validity", *rules, "mixed entities /100", "unigram H (bits)",
            "tokens/s", "ms/step", "step cost vs marginal"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        ratio = "" if r["step_cost_vs_marginal"] is None else f"{r['step_cost_vs_marginal']:.2f}x"
        cells = [r["decoder"], str(r["tokens_per_step"]), f"{r['nfe']:.1f}", f"{r['validity']:.3f}",
                 *(f"{r[f'violation/{rule}']:.3f}" for rule in rules),
                 f"{100 * r.get('committed_invalid_entities', 0.0):.1f}", f"{r['unigram_entropy']:.2f}",
                 f"{r['tokens_per_s']:.0f}", f"{r['ms_per_step']:.1f}", ratio]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(rows: list[dict], k: int = 4) -> str:
    at = {r["decoder"]: r for r in rows if r["tokens_per_step"] == k}
    if "joint" not in at or BASELINE not in at:
        return ""
    joint, marginal = at["joint"], at[BASELINE]
    share = joint["invalid"] / marginal["invalid"] if marginal["invalid"] > 0 else float("nan")
    return (f"at {k} tokens/step: invalid {marginal['invalid']:.3f} (marginal) -> {joint['invalid']:.3f} (joint), "
            f"{share:.2f} of the marginal's (target <= 0.20); per-step cost {joint['step_cost_vs_marginal']:.2f}x "
            f"(target <= 1.30)")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    overrides = argv[argv.index("--") + 1:] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, help="a finished run trained with head=dependency")
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8], help="tokens per step")
    parser.add_argument("--decoders", nargs="+", default=["marginal", "joint", "speculative"])
    parser.add_argument("--samples", type=int, default=512, help="test prompts decoded per setting")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="timing passes over the first batch")
    parser.add_argument("--out", type=Path, help="where to write trap_table.csv/json (default: the run dir)")
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    try:
        run_dir = args.run_dir or train(overrides)
        datamodule, info, module = load(run_dir)
        built = decoders(args.decoders, args.ks, info, module)
        rows = measure(module, info, datamodule, built, args.samples, args.batch_size, args.seed, args.repeats)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    out = args.out or run_dir
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "trap_table.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "trap_table.json").write_text(json.dumps({"run_dir": str(run_dir), "rows": rows}, indent=2) + "\n")
    print(markdown(rows, info.rules))
    print(summary(rows))
    print(out / "trap_table.csv")


if __name__ == "__main__":
    main()
