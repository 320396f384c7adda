"""DataInfo as plain values, so a checkpoint or an exported model carries what the model needs of its
data (vocabulary facts, the answer-token counts behind the unigram, the checker) and loads without it."""

from __future__ import annotations

import importlib

from dlm_lightning.data.info import DataInfo
from dlm_lightning.errors import UserError

FACTS = ("vocab_size", "mask_id", "pad_id", "eos_id", "prompt_length", "seq_len")


def info_to_dict(info: DataInfo) -> dict:
    """Plain values and one tensor (``token_counts``); the tokenizer is saved beside it."""
    facts = {key: int(getattr(info, key)) for key in FACTS}
    return {**facts, "special_ids": [int(i) for i in info.special_ids], "rules": list(info.rules),
            "entities": [list(e) for e in info.entities], "checker": _reference(info.checker),
            "pad_ids": [int(i) for i in info.pad_ids], "loss_excludes_padding": bool(info.loss_excludes_padding),
            "token_counts": info.token_counts.double().cpu()}


def info_from_dict(values: dict, tokenizer) -> DataInfo:
    return DataInfo(**{key: int(values[key]) for key in FACTS}, special_ids=tuple(values["special_ids"]),
                    token_counts=values["token_counts"].double(), tokenizer=tokenizer,
                    checker=_resolve(values.get("checker")), rules=tuple(values.get("rules", ())),
                    entities=tuple(tuple(e) for e in values.get("entities", ())),
                    pad_ids=tuple(values.get("pad_ids", ())),
                    loss_excludes_padding=bool(values.get("loss_excludes_padding", False)))


def _reference(function) -> str | None:
    """``module:name`` of a module-level function (the corpus checker); None for anything else."""
    if function is None:
        return None
    module, name = getattr(function, "__module__", None), getattr(function, "__qualname__", "")
    if module is None or "<" in name or "." in name:
        return None
    return f"{module}:{name}"


def _resolve(reference: str | None):
    if reference is None:
        return None
    module, name = reference.split(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise UserError(f"the data checker {reference} this model was trained with is not importable here") from None
