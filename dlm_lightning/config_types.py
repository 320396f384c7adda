"""Type checks of a composed config against the signatures of its ``_target_`` callables.

Every config node with a ``_target_`` is a typed schema already: its keys are the target's parameters,
annotated. Checking each key and value against the signature before anything is built turns an unknown
key (``decoder.tokens_per_stp=2``) or a wrong type (``data.batch_size=1.5``, ``schedule.learnable=maybe``)
into one line naming the key, instead of a traceback from deep inside a constructor, or a silently
truthy string. Annotations this
check cannot judge (unions of containers, tensors, callables) are left to the component's own checks.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig

from dlm_lightning.errors import ConfigError

# top-level keys of the main config, typed like a structured config's fields
TOP_LEVEL = {"seed": int, "reuse_training": bool, "resume": typing.Optional[str], "init_from": typing.Optional[str]}


class PositiveInt(int):
    """A count: an annotation for an integer >= 1 (used by ``check_keys``)."""


def check_keys(cfg: DictConfig, schema: dict[str, Any]) -> None:
    """An entry point's own keys against their annotations (int, float, bool, str, None, PositiveInt,
    Literal choices, lists and Optional of those), each failure one line naming the key."""
    for key, annotation in schema.items():
        _check(key, cfg.get(key), annotation, own=True)


def check_config_types(cfg: DictConfig, top_level: dict[str, Any] = TOP_LEVEL) -> None:
    for key, annotation in top_level.items():
        if key in cfg:
            _check(key, cfg[key], annotation)
    _walk(cfg, "")


def check_node_types(node: DictConfig, prefix: str) -> None:
    _walk(node, prefix)


def _walk(node, prefix: str) -> None:
    if isinstance(node, DictConfig):
        if "_target_" in node:
            _check_target(node, prefix)
        for key in node:
            if not str(key).startswith("_"):
                _walk(node.get(key), f"{prefix}{key}.")
    elif isinstance(node, ListConfig):
        for item in node:
            _walk(item, prefix)


def _check_target(node: DictConfig, prefix: str) -> None:
    try:
        target = get_object(node["_target_"])
        hints = typing.get_type_hints(target.__init__ if inspect.isclass(target) else target)
        params = inspect.signature(target).parameters
    except Exception:  # not importable or not introspectable: the builder reports it
        return
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    for key, value in node.items():
        if str(key).startswith("_"):
            continue
        if key not in params and not takes_any:
            valid = [name for name, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
            raise ConfigError(f"{prefix}{key}", value, f"unknown key; valid keys: {', '.join(valid) or '(none)'}")
        if key not in hints:
            continue
        if isinstance(value, (DictConfig, ListConfig)):
            continue
        _check(f"{prefix}{key}", value, hints[key])


def _check(key: str, value: Any, annotation: Any, own: bool = False) -> None:
    allowed = _allowed(annotation, own)
    if allowed is None or any(ok(value) for ok, _ in allowed):
        return
    if isinstance(value, (DictConfig, ListConfig)):  # name the value as written on the command line
        from omegaconf import OmegaConf

        value = OmegaConf.to_container(value)
    raise ConfigError(key, value, f"must be {' or '.join(name for _, name in allowed)}")


def _allowed(annotation: Any, own: bool = False):
    """[(predicate, name)] for annotations made of int, float, bool, str and None; None = not judged.
    ``own`` (an entry point's own keys): also Literal, list[...] and PositiveInt, left to the components
    in their signatures (a component may take a scalar where it annotates a list)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        # a config cannot hold a tensor (torch.optim's ``lr: float | Tensor``): that part allows nothing
        parts = [_allowed(arg, own) for arg in typing.get_args(annotation) if not _is_tensor(arg)]
        if any(part is None for part in parts):
            return None
        return [entry for part in parts for entry in part]
    if own and origin is typing.Literal:
        choices = typing.get_args(annotation)
        return [(lambda v: any(v == c and type(v) is type(c) for c in choices),
                 f"one of {', '.join(map(str, choices))}")]
    if own and origin is list:
        items = _allowed(typing.get_args(annotation)[0], own)
        if items is None:
            return None
        names = " or ".join(name for _, name in items)
        return [(lambda v: isinstance(v, (list, ListConfig)) and all(any(ok(x) for ok, _ in items) for x in v),
                 f"a list [...] (each item {names})")]
    if own and annotation is PositiveInt:
        return [(lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer >= 1")]
    if annotation is type(None):
        return [(lambda v: v is None, "null")]
    if annotation is bool:
        return [(lambda v: isinstance(v, bool), "a boolean (true or false)")]
    if annotation is int:
        return [(lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer")]
    if annotation is float:
        return [(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number")]
    if annotation is str:
        return [(lambda v: isinstance(v, str), "a string")]
    return None


def _is_tensor(annotation: Any) -> bool:
    import torch

    return annotation is torch.Tensor
