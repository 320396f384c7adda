"""Builds components from a Hydra config by ``_target_``; config errors come out naming their key."""

from __future__ import annotations

import inspect
from contextlib import contextmanager

from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig

from dlm_lightning.errors import ConfigError


@contextmanager
def config_group(name: str, node: DictConfig | None = None):
    """Re-raises errors from building ``name`` as a ConfigError whose key starts with ``name``."""
    try:
        yield
    except ConfigError as error:
        raise error.under(name) from None
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, ConfigError):
            raise cause.under(name) from None
        if isinstance(cause, TypeError) and "unexpected keyword argument" in str(cause) and node is not None:
            raise ConfigError(name, _bad_key(cause), f"unknown key; valid keys: {', '.join(_valid_keys(node))}") from None
        raise ConfigError(name, node.get("_target_") if node is not None else None, str(cause or error)) from None


def _bad_key(error: TypeError) -> str:
    return str(error).rsplit("'", 2)[-2] if str(error).count("'") >= 2 else str(error)


def _valid_keys(node: DictConfig) -> list[str]:
    target = get_class(node["_target_"]) if "_target_" in node else None
    if target is None:
        return []
    params = inspect.signature(target).parameters
    return [name for name, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def build(cfg: DictConfig, group: str, **kwargs):
    with config_group(group, cfg[group]):
        return instantiate(cfg[group], **kwargs)


def build_module(cfg: DictConfig, info):
    """The LightningModule for ``cfg`` on data described by ``info`` (a DataInfo)."""
    schedule = build(cfg, "schedule")
    decoder = build(cfg, "decoder")
    backbone = build(cfg, "model", vocab_size=info.vocab_size, max_seq_len=info.seq_len,
                     time_conditioning=schedule.needs_time)
    # live objects go in after instantiation: Hydra would turn a dataclass argument into a DictConfig
    factory = build(cfg, "module", _partial_=True)
    with config_group("module", cfg.module):
        return factory(backbone=backbone, schedule=schedule, decoder=decoder, data_info=info)
