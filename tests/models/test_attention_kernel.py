"""``model.attention=auto`` (the default): the math kernel on a CPU, PyTorch's fused kernels on a GPU."""

import torch
from torch.nn.attention import SDPBackend

from dlm_lightning.models.transformer import Transformer, attention_kernel


def test_auto_takes_math_on_a_cpu_and_lets_pytorch_choose_on_a_gpu():
    assert attention_kernel("auto", "cpu") == SDPBackend.MATH
    assert attention_kernel("auto", "cuda") is None
    assert attention_kernel("flash", "cuda") == SDPBackend.FLASH_ATTENTION
    assert attention_kernel("default", "cpu") is None


def test_auto_equals_math_on_a_cpu_bit_for_bit():
    tokens = torch.randint(0, 20, (2, 12), generator=torch.Generator().manual_seed(0))
    outputs = []
    for attention in ("auto", "math"):
        torch.manual_seed(0)
        outputs.append(Transformer(20, 12, d_model=16, n_layers=1, n_heads=2, attention=attention)(tokens)[0])
    assert torch.equal(*outputs)
