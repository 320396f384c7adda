"""torch.compile for a backbone: its full forward and, where it has one, its cached span forward."""

from __future__ import annotations

import torch
from torch import nn

from dlm_lightning.errors import require

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_backbone(backbone: nn.Module, mode: str = "default") -> nn.Module:
    """Compiles ``backbone`` in place (same parameters, same state_dict keys) and returns it."""
    require(mode in COMPILE_MODES, "compile", mode, f"one of {', '.join(COMPILE_MODES)}")
    # instance attributes shadow the methods: nn.Module.__call__ and the decoders reach the compiled ones
    backbone.forward = torch.compile(backbone.forward, mode=mode)
    if hasattr(backbone, "forward_span"):
        backbone.forward_span = torch.compile(backbone.forward_span, mode=mode)
    return backbone
