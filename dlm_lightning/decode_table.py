"""Decodes a run's test prompts with several decoder settings and scores each by validity *and* the
collapse metrics (answer length against the data's, token profile, diversity), with the data's own
answers as the first row. Every setting sees the same prompts and the same generator seed per batch.
"""

from __future__ import annotations

import statistics

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from dlm_lightning.build import build
from dlm_lightning.cli import CONFIG_DIR, register_resolvers
from dlm_lightning.errors import require
from dlm_lightning.metrics.collapse import CollapseMetrics
from dlm_lightning.metrics.samples import SampleQuality
from dlm_lightning.run.load import LoadedRun
from dlm_lightning.sample_records import sample_records
from dlm_lightning.seeding import derived_generator

DATA = "the data itself"
# The settings of issue 12's table: one block, blocks of 8, random remasking, ancestral; plus time_grid.
DEFAULT_SETTINGS = (
    "decoder=marginal decoder.block_length=40",
    "decoder=marginal",
    "decoder=random decoder.block_length=40",
    "decoder=ancestral",
    "decoder=time_grid",
)
COLUMNS = ("validity", "length/mean", "length/mean_diff", "length/bias", "length/tv", "length/early_stop",
           "diversity/distinct_2", "diversity/repeat_3", "nfe")


def build_decoder(setting: str, run: LoadedRun):
    """A decoder from space-separated Hydra overrides of the decoder group (e.g. ``decoder=random``)."""
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=setting.split())
    decoder = build(cfg, "decoder")
    decoder.check(run.info.answer_length)
    decoder.check_head(run.module.dependency_head)
    return decoder


def decode_table(run: LoadedRun, settings: list[str], samples: int, batch_size: int,
                 seeds: list[int]) -> list[dict]:
    """One row per setting (the data first): each metric's mean and sample std over decoding seeds."""
    info = run.info
    size = run.datamodule.sizes["test"]
    require(1 <= samples <= size, "samples", samples, f"must be between 1 and the test split's {size}")
    require(len(seeds) >= 1, "seeds", seeds, "one or more decoding seeds")
    dataset = run.datamodule.dataset("test")
    ids = torch.stack([dataset[i]["input_ids"] for i in range(samples)])
    decoders = {setting: build_decoder(setting, run) for setting in settings}
    per_seed: dict[str, list[dict]] = {DATA: [_score(info, [(ids, ids, 0)])]}
    context = run.module.decode_context()
    for setting, decoder in decoders.items():
        per_seed[setting] = []
        for seed in seeds:
            batches = []
            for start in range(0, samples, batch_size):
                reference = ids[start: start + batch_size]
                generator = derived_generator(seed, "decode", start)
                out = decoder.decode(context, reference[:, : info.prompt_length], info.answer_length, generator)
                batches.append((out.tokens, reference, out.nfe))
            per_seed[setting].append(_score(info, batches))
    return [{"setting": setting, "seeds": len(values),
             **{m: statistics.fmean(v[m] for v in values) for m in COLUMNS},
             **{f"{m}_std": statistics.stdev(v[m] for v in values) if len(values) > 1 else 0.0 for m in COLUMNS}}
            for setting, values in per_seed.items()]


def _score(info, batches) -> dict:
    quality = SampleQuality(info.vocab_size, info.rules, tuple(info.special_ids))
    collapse = CollapseMetrics.for_data(info)
    for tokens, reference, nfe in batches:
        answers = tokens[:, info.prompt_length:]
        _, checks = sample_records(info, tokens, torch.arange(len(tokens)))
        quality.update(answers, checks, nfe, 1.0)
        collapse.update(answers, reference[:, info.prompt_length:])
    values = {**quality.compute(), **collapse.compute()}
    return {m: float(values[m]) for m in COLUMNS if m in values}


def markdown(rows: list[dict]) -> str:
    head = ["setting", "validity", "mean length", "length - data", "TV(lengths)", "early stop", "distinct-2",
            "repeat-3", "NFE"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        def cell(m, digits):
            return f"{r[m]:.{digits}f}" + (f" ± {r[m + '_std']:.{digits}f}" if r["seeds"] > 1 else "")
        lines.append("| " + " | ".join([f"`{r['setting']}`" if r["setting"] != DATA else DATA,
                                         cell("validity", 3), cell("length/mean", 1), cell("length/mean_diff", 1),
                                         cell("length/tv", 3), cell("length/early_stop", 3),
                                         cell("diversity/distinct_2", 3), cell("diversity/repeat_3", 3),
                                         f"{r['nfe']:.0f}"]) + " |")
    return "\n".join(lines)
