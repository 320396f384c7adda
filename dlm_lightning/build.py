"""Builds components from a Hydra config by ``_target_``; config errors come out naming their key (unknown
keys and wrong types are caught before building, by ``config_types``)."""

from __future__ import annotations

from contextlib import contextmanager

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from dlm_lightning.config_types import check_node_types
from dlm_lightning.errors import ConfigError, UserError


@contextmanager
def config_group(name: str, node: DictConfig | None = None):
    """Re-raises errors from building ``name`` as a ConfigError whose key starts with ``name``."""
    try:
        yield
    except ConfigError as error:
        raise error.under(name) from None
    except (InstantiationException, TypeError) as error:
        # instantiate wraps a constructor's error; calling a _partial_ factory raises it bare
        cause = error.__cause__ if isinstance(error, InstantiationException) else error
        if isinstance(cause, ConfigError):
            raise cause.under(name) from None
        if not isinstance(error, InstantiationException):
            raise
        raise ConfigError(name, node.get("_target_") if node is not None else None, str(cause or error)) from None
    except ValueError as error:  # a component's own argument check, e.g. torch.optim's betas
        if isinstance(error, UserError):
            raise
        raise ConfigError(name, node.get("_target_") if node is not None else None, str(error)) from None


def build(cfg: DictConfig, group: str, **kwargs):
    check_node_types(cfg[group], f"{group}.")
    with config_group(group, cfg[group]):
        return instantiate(cfg[group], **kwargs)


def build_module(cfg: DictConfig, info):
    """The LightningModule for ``cfg`` on data described by ``info`` (a DataInfo)."""
    schedule = build(cfg, "schedule")
    decoder = build(cfg, "decoder")
    # model.max_seq_len (optional) caps the sequence length; by default the model takes the data's
    max_seq_len = cfg.model.get("max_seq_len") or info.seq_len
    if info.seq_len > max_seq_len:
        raise ConfigError("data.seq_len", info.seq_len, f"must be <= model.max_seq_len={max_seq_len}, "
                          f"the longest sequence the model takes")
    backbone = build(cfg, "model", vocab_size=info.vocab_size, max_seq_len=max_seq_len,
                     time_conditioning=schedule.needs_time)
    head = None  # the optional dependency head (head=dependency) reads the backbone's hidden states
    if cfg.get("head") is not None:
        head = build(cfg, "head", d_model=backbone.d_model, vocab_size=info.vocab_size, max_seq_len=info.seq_len)
    # a frozen backbone (model.train_mode=frozen) leaves only the head (or a learnable schedule) to train
    trainable = [p for part in (backbone, head, schedule) if part is not None for p in part.parameters()
                 if p.requires_grad]
    if not trainable:
        raise ConfigError("head", None, "the backbone is frozen and nothing else has weights to train: "
                          "add head=dependency (the dependency head trains on the frozen backbone)")
    # decoder settings that this answer length or model cannot use fail here, before training
    with config_group("decoder", cfg.decoder):
        try:
            decoder.check(info.answer_length)
        except ConfigError as error:  # the answer length is the data's: say where it comes from
            raise ConfigError(error.key, error.value, f"{error.allowed} (the answer length is set by the data "
                              f"config: data.answer_length, or data.layout.*)") from None
    decoder.check_head(head)
    # live objects go in after instantiation: Hydra would turn a dataclass argument into a DictConfig
    factory = build(cfg, "module", _partial_=True)
    with config_group("module", cfg.module):
        module = factory(backbone=backbone, schedule=schedule, decoder=decoder, data_info=info,
                         dependency_head=head)
    with config_group("decoder", cfg.decoder):  # e.g. cache=dual with a backbone that has no cache
        decoder.check_denoiser(module.denoiser)
    # Lightning builds the optimizer and LR schedule inside fit: build them once now, so that their
    # config errors come before training and name their full key
    with config_group("module.optimizer", cfg.module.get("optimizer")):
        optimizer = module.optimizer_factory(params=module.parameters())
    if module.lr_schedule_factory is not None:
        with config_group("module.lr_schedule", cfg.module.get("lr_schedule")):
            module.lr_schedule_factory(optimizer, total_steps=1)
    return module
