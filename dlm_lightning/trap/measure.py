"""Decodes the same test prompts with each decoder at each tokens-per-step value and scores them.

Every (decoder, k) pair sees the same prompts with the same random generator per batch, so differences
are the decoders'. Calls are interleaved batch by batch (k by k, decoder by decoder): the per-step cost
ratio against the marginal decoder is a paired measurement in one process.
"""

from __future__ import annotations

import statistics

import torch

from dlm_lightning.build import build
from dlm_lightning.cli import compose_config
from dlm_lightning.errors import require
from dlm_lightning.judge.scoring import score_answers
from dlm_lightning.metrics.collapse import CollapseMetrics
from dlm_lightning.metrics.entities import committed_mixed_pairs
from dlm_lightning.metrics.samples import SampleQuality
from dlm_lightning.run.load import LoadedRun
from dlm_lightning.sample_records import sample_records
from dlm_lightning.seeding import derived_generator

BASELINE = "marginal"


def build_decoders(names: list[str], ks: list[int], run: LoadedRun) -> dict:
    """(decoder option, tokens per step) -> decoder, each composed from ``dlm_lightning/configs/decoder/<name>``."""
    require(len(ks) > 0 and all(k >= 1 for k in ks), "ks", ks, "one or more tokens-per-step values, each >= 1")
    built = {}
    for k in ks:
        for name in names:
            cfg = compose_config([f"decoder={name}", f"decoder.tokens_per_step={k}"])
            decoder = build(cfg, "decoder")
            decoder.check(run.info.answer_length)
            decoder.check_head(run.module.dependency_head)
            built[name, k] = decoder
    return built


def measure(run: LoadedRun, built: dict, samples: int, batch_size: int, seed: int, repeats: int,
            judge=None) -> list[dict]:
    """One row per (decoder, k): quality over ``samples`` test prompts, and the median time per denoiser
    step over those batches plus ``repeats - 1`` more passes over the first batch. Data with a checker
    (the corpus) gets validity; a ``judge`` (dlm_lightning.judge) adds generative perplexity."""
    info, module = run.info, run.module
    dataset = run.datamodule.dataset("test")  # first: a data module may settle its split sizes here
    size = run.datamodule.sizes["test"]
    require(1 <= samples <= size, "samples", samples, f"must be between 1 and the test split's {size}")
    ids = torch.stack([dataset[i]["input_ids"] for i in range(samples)])
    metrics = {key: SampleQuality(info.vocab_size, info.rules, tuple(info.special_ids)) for key in built}
    collapse = {key: CollapseMetrics.for_data(info) for key in built}
    step_seconds = {key: [] for key in built}
    answers_of = {key: [] for key in built}  # suite-token answers, for the judge
    context = module.decode_context()
    for decoder in built.values():  # warm-up: first calls pay one-off allocation costs
        decoder.decode(context, ids[:8, : info.prompt_length], info.answer_length, torch.Generator().manual_seed(0))
    starts = list(range(0, samples, batch_size))
    for n, start in enumerate(starts + [0] * (repeats - 1)):
        prompts = ids[start: start + batch_size, : info.prompt_length]
        index = torch.arange(start, start + prompts.shape[0])
        for key, decoder in built.items():
            generator = derived_generator(seed, "decode", start)
            out = decoder.decode(context, prompts, info.answer_length, generator)
            step_seconds[key].append(out.seconds / out.nfe)
            if n < len(starts):
                answers = out.tokens[:, info.prompt_length:]
                _, checks = sample_records(info, out.tokens, index)
                entity_errors = (committed_mixed_pairs(answers, out.commit_step, module.entity_codes, info.vocab_size)
                                 if info.entities else None)
                metrics[key].update(answers, checks, out.nfe, out.seconds, entity_errors)
                answers_of[key].extend(answers.tolist())
                collapse[key].update(answers, ids[start: start + batch_size, info.prompt_length:])
    rows = []
    for (name, k), metric in metrics.items():
        values = {m: float(v) for m, v in {**metric.compute(), **collapse[name, k].compute()}.items()}
        baseline = step_seconds.get((BASELINE, k))
        ratio = statistics.median(a / b for a, b in zip(step_seconds[name, k], baseline)) if baseline else None
        if "validity" in values:
            values["invalid"] = 1.0 - values["validity"]
        if judge is not None:
            references = ids[:, info.prompt_length:].tolist()  # the true answers, for MAUVE
            values.update(score_answers(judge, info.tokenizer, info.eos_id, answers_of[name, k], references))
        rows.append({"decoder": name, "tokens_per_step": k, "samples": samples,
                     **values, "ms_per_step": 1000 * statistics.median(step_seconds[name, k]),
                     "step_cost_vs_marginal": ratio})
    return rows
