"""torch.compile for a backbone (its full forward and, where it has one, its cached span forward), for
decoding (``compile_backbone``) and for training (the ``CompileBackbone`` callback, ``callbacks=compile``)."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn

from dlm_lightning.errors import require

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_backbone(backbone: nn.Module, mode: str = "default", backend: str = "inductor") -> nn.Module:
    """Compiles ``backbone``'s methods in place and returns it: the module and its state_dict keys stay
    the same (``torch.compile(module)`` would prefix them with ``_orig_mod.`` and break checkpoints)."""
    require(mode in COMPILE_MODES, "compile.mode", mode, f"one of {', '.join(COMPILE_MODES)}")
    options = {"mode": mode} if backend == "inductor" else {}  # modes are inductor's
    # instance attributes shadow the methods, so nn.Module.__call__ and the decoders reach the compiled ones
    backbone.forward = torch.compile(backbone.forward, backend=backend, **options)
    if hasattr(backbone, "forward_span"):
        backbone.forward_span = torch.compile(backbone.forward_span, backend=backend, **options)
    return backbone


class CompileBackbone(L.Callback):
    """Compiles the module's backbone before training (and the run's own evaluation and sampling)."""

    def __init__(self, mode: str = "default", backend: str = "inductor"):
        require(mode in COMPILE_MODES, "mode", mode, f"one of {', '.join(COMPILE_MODES)}")
        self.mode, self.backend = mode, backend

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        backbone = pl_module.denoiser.backbone
        if not getattr(backbone, "_compiled_by_callback", False):
            compile_backbone(backbone, self.mode, self.backend)
            backbone._compiled_by_callback = True
