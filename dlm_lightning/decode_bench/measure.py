"""Decodes the same test prompts with every setting and measures speed and quality in the same pass.

Settings are interleaved batch by batch (setting by setting, with the same random generator per batch
and seed), so a change in machine load hits all alike, and the speed-up against the uncached decoder
is a paired ratio per batch. Quality: validity and per-rule violations under the corpus's checker,
unigram entropy, the decoded answer length (up to the first [EOS]) against the reference answer's, and
the fraction of answer tokens equal to the uncached decode of the same decoder, batch and seed.
"""

from __future__ import annotations

import statistics
from contextlib import nullcontext

import torch

from dlm_lightning.decode_bench.memory import PeakMemory
from dlm_lightning.errors import RunDirError, require
from dlm_lightning.metrics.samples import SampleQuality
from dlm_lightning.run.load import LoadedRun
from dlm_lightning.sample_records import sample_records
from dlm_lightning.seeding import derived_generator


def answer_lengths(answers: torch.Tensor, eos_id: int) -> torch.Tensor:
    """Tokens before the first [EOS] of each answer [B, A] (A when there is none)."""
    is_eos = answers == eos_id
    first = is_eos.int().argmax(dim=1)
    return torch.where(is_eos.any(dim=1), first, answers.shape[1])


def _autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def measure(run: LoadedRun, built: dict, samples: int, batch_size: int, seeds: list[int], device: str = "cpu",
            precision: str = "fp32", variant: str = "") -> list[dict]:
    """One row per (setting, seed); ``variant`` (e.g. "compiled") is appended to the labels."""
    info = run.info
    if info.checker is None:
        raise RunDirError(f"{run.run_dir}: its data has no checker, so validity is undefined; use data=corpus")
    dataset = run.datamodule.dataset("test")
    size = run.datamodule.sizes["test"]
    require(1 <= samples <= size, "samples", samples, f"must be between 1 and the test split's {size}")
    device = torch.device(device)
    module = run.module.to(device)
    ids = torch.stack([dataset[i]["input_ids"] for i in range(samples)]).to(device)
    reference_length = answer_lengths(ids[:, info.prompt_length:], info.eos_id).double()
    context = module.decode_context()
    with _autocast(device, precision):
        for decoder in built.values():  # warm-up at the batch's shape: one-off allocation (and compilation) costs
            decoder.decode(context, ids[:batch_size, : info.prompt_length], info.answer_length,
                           torch.Generator(device).manual_seed(0))
    rows = []
    for seed in seeds:
        state = {s: {"quality": SampleQuality(info.vocab_size, info.rules, tuple(info.special_ids)), "seconds": [],
                     "nfe": [], "peak": [], "extra": [], "agree": 0.0, "same": 0.0, "length": [], "bias": []}
                 for s in built}
        for start in range(0, samples, batch_size):
            prompts = ids[start: start + batch_size, : info.prompt_length]
            index = torch.arange(start, start + prompts.shape[0])
            answers_of = {}
            for setting, decoder in built.items():
                generator = derived_generator(seed, "decode", start, device=device)
                with PeakMemory(device) as memory, _autocast(device, precision):
                    out = decoder.decode(context, prompts, info.answer_length, generator)
                answers = out.tokens[:, info.prompt_length:]
                answers_of[setting] = answers
                row = state[setting]
                _, checks = sample_records(info, out.tokens.cpu(), index)
                row["quality"].update(answers.cpu(), checks, out.nfe, out.seconds)
                row["seconds"].append(out.seconds)
                row["nfe"].append(out.nfe)
                row["peak"].append(memory.peak_mib)
                row["extra"].append(memory.extra_mib)
                lengths = answer_lengths(answers, info.eos_id).double()
                row["length"].append(lengths.sum().item())
                row["bias"].append((lengths - reference_length[start: start + prompts.shape[0]]).sum().item())
            for setting in built:  # uncached references were decoded in the same batch
                reference = answers_of[setting.uncached]
                state[setting]["agree"] += (answers_of[setting] == reference).double().sum().item()
                state[setting]["same"] += (answers_of[setting] == reference).all(dim=1).double().sum().item()
        for setting, row in state.items():
            quality = {k: float(v) for k, v in row["quality"].compute().items()}
            seconds = sum(row["seconds"])
            baseline = state[setting.uncached]["seconds"]
            rows.append({
                **setting.as_dict(), "label": f"{setting.label} {variant}".strip(), "variant": variant,
                "seed": seed, "answer_length": info.answer_length,
                "samples": samples, "device": str(device), "precision": precision,
                "tokens_per_s": samples * info.answer_length / seconds,
                "speedup": statistics.median(b / s for b, s in zip(baseline, row["seconds"])),
                "nfe": statistics.mean(row["nfe"]),
                "ms_per_step": 1000 * statistics.median(s / n for s, n in zip(row["seconds"], row["nfe"])),
                "peak_mib": max((p for p in row["peak"] if p is not None), default=None),
                "peak_extra_mib": max((p for p in row["extra"] if p is not None), default=None),
                "validity": quality["validity"],
                **{k: v for k, v in quality.items() if k.startswith("violation/")},
                "unigram_entropy": quality["unigram_entropy"],
                "mean_length": sum(row["length"]) / samples,
                "length_bias": sum(row["bias"]) / samples,
                "agreement": row["agree"] / (samples * info.answer_length),
                "same_answer": row["same"] / samples,
            })
    return rows


def summarise(rows: list[dict], keys: tuple[str, ...]) -> list[dict]:
    """Rows of the same setting and answer length (and device) folded over seeds: mean and std of ``keys``."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["answer_length"], row["device"], row["label"]), []).append(row)
    out = []
    for (length, device, label), group in groups.items():
        first = group[0]
        folded = {k: first[k] for k in ("decoder", "tokens_per_step", "cache", "refresh_every", "label", "variant",
                                         "answer_length", "samples", "device", "precision")}
        folded["seeds"] = [r["seed"] for r in group]
        for key in keys:
            values = [r[key] for r in group if r.get(key) is not None]
            folded[key] = statistics.mean(values) if values else None
            folded[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        out.append(folded)
    return out
