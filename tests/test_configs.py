"""Every option of every config group composes and instantiates.

The options are found on disk (every ``configs/<group>/**/<option>.yaml``), so options added later are
tested without touching this file. Each group is composed under the primary config whose defaults tree
holds it (``config.yaml`` for the main job, ``probe.yaml`` for the probe); a nested group such as
``data/tokenizer`` under the parent option that brings it in. Main-job options are composed from the
documented spelling ``+group=x``, normalised as ``experiments.run`` does (test_cli checks that both
spellings give one config), and then built as a run builds them: data -> data_info, schedule, decoder, model and head via build_module, trainer and callbacks,
followed by one NELBO forward pass (and, for decoding options, one decode) on two validation examples.

An option that cannot be instantiated here must be listed below with its reason; anything else that
fails to instantiate fails the test, and a listed option that no longer exists fails too.
"""

from __future__ import annotations

import functools

import pytest
import torch
from hydra.utils import get_object, instantiate
from omegaconf import OmegaConf

from suite_helpers import CONFIG_DIR, compose_config
from dlm_lightning.cli import config_groups

pytestmark = pytest.mark.long  # real processes or many trainings: scheduled first under xdist

# Options that only instantiate together with another option.
COMPANIONS = {
    "decoder=joint": ("head=dependency",),  # samples through the dependency head
    "decoder=speculative": ("head=dependency",),
    "decoder=joint_rank": ("head=dependency",),
    "decoder=joint_threshold": ("head=dependency",),
}
# Composed, not instantiated: hardware, network access or user files that this machine lacks.
COMPOSE_ONLY = {
    "trainer=gpu": "needs a CUDA GPU",
    "trainer=fsdp": "needs CUDA GPUs (FSDP)",
    "prompts=file": "needs a user prompts file (prompts.path); tests/probe builds one",
    "experiment=ablation_gpu": "needs CUDA GPUs (trainer.accelerator=gpu)",
    "judge=hf": "downloads its judge (gpt2-large) from the Hugging Face hub; tests/judge builds local ones",
    "judge=suite": "needs a run trained with objective=autoregressive (judge.run); tests/trap trains one",
    "trainer=fsdp_8b": "needs CUDA GPUs (FSDP)",
    "model=hf": "needs model.name_or_path, a Hugging Face model; tests/hf builds tiny local ones",
    "experiment=llada_frozen_head": "needs CUDA GPUs and LLaDA-8B (tests/hf/test_hf_configs.py checks it)",
    "experiment=dream_sft_adaptive": "needs CUDA GPUs and Dream-7B (tests/hf/test_hf_configs.py checks it)",
}
# The DataModule is built, but its data is not prepared (data_info), nor the model on top of it; this also
# applies to any option whose composed config selects one of these (e.g. an experiment preset).
NO_DATA_PREPARATION = {
    "data=shakespeare": "tokenises ~5 MB of plays with a freshly trained BPE on first use (~30 s on 2 cores)",
    "data=files": "reads user files (data.source.data_files)",
    "data=lima": "downloads GAIR/lima from the Hugging Face hub (gated)",
    "data=lm1b": "streams LM1B from the Hugging Face hub",
    "data=lm1b_unpacked": "streams LM1B from the Hugging Face hub; tests/data/test_standard_configs.py loads a local fixture",
    "data=openwebtext": "streams OpenWebText from the Hugging Face hub",
    "data=text8": "downloads text8.zip; tests/data/test_standard_configs.py loads a local fixture",
    "data=tinystories": "downloads TinyStories from the Hugging Face hub",
    "data=wikitext103": "downloads WikiText-103 from the Hugging Face hub",
    "data/tokenizer=bpe": "prepared with a data option, and every one that uses it is listed here",
    "data/tokenizer=pretrained": "downloads a tokenizer from the Hugging Face hub",
    "data/tokenizer=model": "reads the tokenizer of model.name_or_path (tests/hf builds local models)",
    "data=sft_json": "reads a user JSON/JSONL file (data.source.data_files) with a model's tokenizer",
}
# Groups whose options change what is decoded: these options also decode two prompts.
DECODING_GROUPS = ("decoder", "head", "schedule", "experiment")

# the main job's config first: groups every primary holds (hydra/*) are tested as a run composes them
PRIMARIES = sorted((p.stem for p in CONFIG_DIR.glob("*.yaml")), key=lambda stem: (stem != "config", stem))
GROUPS = sorted(d.relative_to(CONFIG_DIR).as_posix() for d in CONFIG_DIR.rglob("*")
                if d.is_dir() and any(d.glob("*.yaml")))
OPTIONS = [f"{group}={p.stem}" for group in GROUPS for p in sorted((CONFIG_DIR / group).glob("*.yaml"))]


def _options_of(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


@functools.lru_cache(maxsize=None)
def _choices(primary: str, overrides: tuple[str, ...] = ()) -> dict:
    try:
        cfg = compose_config(overrides, primary, hydra=True)
    except Exception:
        return {}
    return dict(cfg.hydra.runtime.choices)


@functools.lru_cache(maxsize=None)
def _context(group: str) -> tuple[str, tuple[str, ...]] | None:
    """(primary config, overrides) under which ``group`` is in the defaults tree."""
    for primary in PRIMARIES:
        if group in _choices(primary):
            return primary, ()
    if "/" in group:
        parent = group.rsplit("/", 1)[0]
        found = _context(parent)
        if found is not None:
            primary, extra = found
            for option in _options_of(parent):
                if f"{parent}={option}" in COMPOSE_ONLY:
                    continue
                overrides = (*extra, f"{parent}={option}")
                if group in _choices(primary, overrides):
                    return primary, overrides
    return None


def _compose(option: str):
    group, name = option.split("=", 1)
    context = _context(group)
    assert context is not None, (
        f"configs/{group} is in the defaults tree of no primary config ({', '.join(PRIMARIES)}): add "
        f"'{group}: null' (or a default) to a defaults list, or Hydra cannot select its options")
    primary, extra = context
    overrides = (*extra, *COMPANIONS.get(option, ()))
    # the main CLI normalises `+group=x` to `group=x` (compose_config applies the same function)
    spelling = "+" if primary == "config" and group in config_groups() else ""
    cfg = compose_config((*overrides, f"{spelling}{group}={name}"), primary, hydra=True)
    assert cfg.hydra.runtime.choices[group] == name
    return primary, cfg


def _selected(cfg) -> set[str]:
    """Every option the composed config selected, as group=option."""
    return {f"{group}={option}" for group, option in cfg.hydra.runtime.choices.items() if option is not None}


@functools.lru_cache(maxsize=None)
def _data_info(data_yaml: str):
    from dlm_lightning.build import build

    return build(OmegaConf.create({"data": OmegaConf.create(data_yaml)}), "data").data_info()


def _build_main_job(option: str, cfg, tmp_path) -> None:
    from dlm_lightning.build import build, build_module
    from dlm_lightning.run.experiment import build_callbacks

    group = option.split("=", 1)[0]
    datamodule = build(cfg, "data")
    if _selected(cfg) & set(NO_DATA_PREPARATION):
        return
    data = OmegaConf.to_container(cfg.data, resolve=True)
    info = _data_info(OmegaConf.to_yaml(data))
    torch.manual_seed(0)
    module = build_module(cfg, info)
    trainer = build(cfg, "trainer", logger=False, callbacks=build_callbacks(cfg, tmp_path),
                    default_root_dir=str(tmp_path))
    assert trainer.max_epochs == cfg.trainer.max_epochs

    # the pieces fit together: one NELBO draw and (for decoding options) one decode on two examples
    dataset = datamodule.dataset("val")
    collate = datamodule.collate_fn("val") or torch.utils.data.default_collate
    batch = collate([dataset[0], dataset[1]])
    x0 = batch["input_ids"]
    module.eval()
    with torch.no_grad():
        draw = module._nelbo(x0, torch.tensor([0.3, 0.9]), torch.rand(x0.shape, generator=torch.Generator().manual_seed(0)))
    assert torch.isfinite(draw.terms).all() and draw.masked[:, : info.prompt_length].sum() == 0
    if group in DECODING_GROUPS:
        out = module.decoder.decode(module.decode_context(), x0[:, : info.prompt_length], info.answer_length,
                                    torch.Generator().manual_seed(0))
        answers = out.tokens[:, info.prompt_length:]
        assert answers.shape == (2, info.answer_length) and not (answers == info.mask_id).any()
        assert out.nfe >= 1


def _build_hydra(cfg) -> None:
    for key in ("run", "sweep"):
        assert str(cfg.hydra[key].dir).startswith("outputs/")
    for node in (cfg.hydra.get("callbacks") or {}).values():
        instantiate(node)
    for key in ("launcher", "sweeper"):
        get_object(cfg.hydra[key]._target_)


@pytest.mark.parametrize("option", OPTIONS)
def test_option_composes_and_instantiates(option, tmp_path):
    primary, cfg = _compose(option)
    listed = sorted(_selected(cfg) & set(COMPOSE_ONLY))
    if listed:
        pytest.skip(f"composed only: {'; '.join(f'{o} {COMPOSE_ONLY[o]}' for o in listed)}")
    group = option.split("=", 1)[0]
    if group == "hydra" or group.startswith("hydra/"):
        _build_hydra(cfg)
    elif primary == "config":
        _build_main_job(option, cfg, tmp_path)
    else:
        instantiate(cfg[group.split("/")[0]])


def test_every_listed_option_exists():
    for listed in (COMPANIONS, COMPOSE_ONLY, NO_DATA_PREPARATION):
        assert set(listed) <= set(OPTIONS)


def test_defaults_and_options_are_found():
    assert {"schedule=uniform", "decoder=marginal", "model=tiny", "data=corpus", "trainer=default"} <= set(OPTIONS)
    assert _context("schedule") == ("config", ())
    choices = _choices("config")
    assert (choices["schedule"], choices["decoder"], choices["data"]) == ("uniform", "marginal", "corpus")


def test_tiny_config_builds_the_documented_model(tiny_cfg, tiny_info):
    from dlm_lightning.build import build_module
    from dlm_lightning.data import corpus

    module = build_module(tiny_cfg, tiny_info)
    backbone = module.denoiser.backbone
    assert (backbone.d_model, len(backbone.blocks), backbone.vocab_size, backbone.max_seq_len) == (
        32, 1, len(corpus.VOCABULARY), 18 + 40)
    assert tiny_info.mask_id == corpus.VOCABULARY.index(corpus.MASK)


@pytest.mark.parametrize("option", sorted(o for o in OPTIONS if o.startswith("experiment=")))
def test_experiment_presets_override_every_key_they_set(option):
    """A preset's every leaf wins over config.yaml and the groups (it was once silently overridden by
    config.yaml's own keys, e.g. module.lr_schedule.warmup_steps and reuse_training)."""
    name = option.split("=", 1)[1]
    preset = OmegaConf.load(CONFIG_DIR / "experiment" / f"{name}.yaml")
    cfg = compose_config([option])
    leaves = {}

    def walk(node, prefix):
        for key, value in node.items():
            if key in ("defaults", "hydra"):
                continue
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                leaves[f"{prefix}{key}"] = value

    walk(OmegaConf.to_container(preset), "")
    assert leaves, f"{option} sets no keys"
    for key, value in leaves.items():
        assert OmegaConf.select(cfg, key) == value, key


def test_the_ablation_preset_reuses_training_and_warms_up_for_its_own_length():
    cfg = compose_config(["experiment=ablation"])
    assert cfg.reuse_training is True and cfg.module.lr_schedule.warmup_steps == 60
    assert compose_config([]).reuse_training is False
