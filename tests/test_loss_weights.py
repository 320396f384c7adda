"""Training-only loss weights: CART (Dream) and padding=excluded. The reported bound never sees them."""

import pytest
import torch

from dlm_lightning.build import build, build_module
from dlm_lightning.errors import ConfigError
from dlm_lightning.loss_weights import cart_kernel, cart_weights, training_weights
from suite_helpers import TINY, compose_config


def test_cart_kernel_exact():
    k = cart_kernel(4, 0.5)
    # 0.5 p (1 - p) ** (|i - j| - 1) with p = 1/2: 1/4, 1/8, 1/16 at gaps 1, 2, 3
    assert k[0].tolist() == [0.0, 0.25, 0.125, 0.0625]
    assert torch.equal(k, k.T)


def test_cart_weight_sums_over_visible_positions_only():
    masked = torch.tensor([[False, True, True, False]])
    c = cart_weights(masked, 0.5)
    # position 1: visible 0 (gap 1) and 3 (gap 2): 1/4 + 1/8; position 2: 1/8 + 1/4
    assert c[0, 1].item() == pytest.approx(0.375) and c[0, 2].item() == pytest.approx(0.375)
    far = cart_weights(torch.tensor([[False, True, True, True, True]]), 0.3)[0, 1:]
    assert (far[:-1] > far[1:]).all()  # falls with the distance to the visible context


def test_training_weights_combine_cart_with_excluded_padding():
    x0 = torch.tensor([[9, 4, 0, 0]])  # prompt [9], answer 4 [EOS] [EOS]
    masked = torch.tensor([[False, True, True, True]])
    t = torch.tensor([0.5])
    excluded = training_weights(x0, masked, t, 1, (0,), True, None)
    assert excluded.tolist() == [[1.0, 1.0, 1.0, 0.0]]  # the first [EOS] is still trained on
    both = training_weights(x0, masked, t, 1, (0,), True, 0.5)
    assert both[0, 1].item() == pytest.approx(0.5 * 0.25) and both[0, 3].item() == 0.0
    assert training_weights(x0, masked, t, 1, (0,), False, None) is None


def _val_nelbo(cfg, info, state, batch):
    module = build_module(cfg, info)
    module.load_state_dict(state)
    module.eval()
    with torch.no_grad():
        module.validation_step(batch, 0)
    return module.val_nelbo.compute()["nelbo"], module


def test_cart_changes_training_but_not_the_reported_bound(tiny_info):
    overrides = [*TINY, "module.eval_decode_batches=0"]
    plain_cfg, cart_cfg = compose_config(overrides), compose_config([*overrides, "module.cart=true"])
    torch.manual_seed(0)
    state = build_module(plain_cfg, tiny_info).state_dict()
    dataset = build(plain_cfg, "data").dataset("val")
    batch = {"input_ids": torch.stack([dataset[i]["input_ids"] for i in range(16)]), "index": torch.arange(16)}
    plain, plain_module = _val_nelbo(plain_cfg, tiny_info, state, batch)
    cart, cart_module = _val_nelbo(cart_cfg, tiny_info, state, batch)
    assert torch.equal(cart, plain)  # bit for bit: the flag is never read outside training_step
    assert cart_module.cart_p == 0.3 and plain_module.cart_p is None


def test_cart_loss_differs_from_the_plain_loss(tiny_module):
    x0 = torch.stack([torch.arange(58) % 20 + 5] * 4)
    draw = tiny_module._nelbo(x0, torch.full((4,), 0.5), torch.rand(x0.shape, generator=torch.Generator().manual_seed(0)))
    plain = tiny_module._training_terms(x0, draw)
    tiny_module.cart_p = 0.3
    cart = tiny_module._training_terms(x0, draw)
    assert torch.equal(plain, draw.terms) and not torch.allclose(cart, plain)


def test_bad_cart_p_names_the_key(tiny_info):
    cfg = compose_config([*TINY, "module.cart=true", "module.cart_p=1.5"])
    with pytest.raises(ConfigError, match="module.cart_p"):
        build_module(cfg, tiny_info)
