"""compile_backbone keeps the module, its outputs and its checkpoint keys; the callback compiles once."""

import pytest
import torch

from dlm_lightning.errors import ConfigError
from dlm_lightning.models.compile import CompileBackbone, compile_backbone
from dlm_lightning.models.transformer import Transformer


def test_compiled_backbone_gives_the_same_outputs_and_state_dict_keys():
    torch.manual_seed(0)
    backbone = Transformer(11, 12, d_model=16, n_layers=1, n_heads=2, mlp_ratio=2).eval()
    z = torch.randint(0, 11, (2, 12))
    expected, keys = backbone(z)[0], list(backbone.state_dict())
    compile_backbone(backbone, "default", backend="eager")  # eager: the wiring, without a C++ toolchain
    assert "forward" in vars(backbone) and "forward_span" in vars(backbone)
    torch.testing.assert_close(backbone(z)[0], expected)
    assert list(backbone.state_dict()) == keys


def test_bad_mode_names_the_key():
    with pytest.raises(ConfigError, match="mode='fast' is invalid: one of default, reduce-overhead"):
        CompileBackbone("fast")


def test_the_run_config_builds_the_callback(compose, tiny_overrides, tmp_path):
    from dlm_lightning.run.experiment import build_callbacks

    cfg = compose([*tiny_overrides, "callbacks=compile", "callbacks.compile.mode=max-autotune"])
    callbacks = [c for c in build_callbacks(cfg, tmp_path) if isinstance(c, CompileBackbone)]
    assert len(callbacks) == 1 and callbacks[0].mode == "max-autotune"
