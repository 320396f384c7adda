"""The dependency head: its factorisation, its training subsets and loss, and its place in the module."""

import math

import pytest

from suite_helpers import compose_config
import torch
from torch import nn

from dlm_lightning.build import build, build_module
from dlm_lightning.errors import ConfigError
from dlm_lightning.heads.base import JointHead
from dlm_lightning.heads.dependency import DependencyHead

V, D, L = 11, 16, 20


def head(seed: int = 0, **kwargs) -> DependencyHead:
    torch.manual_seed(seed)
    h = DependencyHead(D, V, L, n_heads=2, **kwargs)
    nn.init.normal_(h.out.weight, std=1.0)
    return h.eval()


def inputs(batch: int = 3, k: int = 5, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(batch, k, D, generator=g)
    positions = torch.randint(0, L, (batch, k), generator=g)
    tokens = torch.randint(0, V, (batch, k), generator=g)
    base = torch.randn(batch, k, V, generator=g).log_softmax(-1)
    return hidden, positions, tokens, base


def test_untrained_head_is_the_product_of_marginals():
    h = DependencyHead(D, V, L, n_heads=2).eval()  # zero-initialised output
    hidden, positions, tokens, base = inputs()
    assert torch.allclose(h(hidden, positions, tokens, base), base, atol=1e-6)


def test_first_position_is_its_marginal_and_later_ones_see_only_earlier_tokens():
    h = head()
    hidden, positions, tokens, base = inputs()
    out = h(hidden, positions, tokens, base)
    assert torch.allclose(out[:, 0], base[:, 0], atol=1e-6)
    assert not torch.allclose(out[:, 1:], base[:, 1:], atol=1e-3)
    changed = tokens.clone()
    changed[:, 2] = (changed[:, 2] + 1) % V  # the token at column 2 is read by columns 3 and 4 only
    again = h(hidden, positions, changed, base)
    assert torch.allclose(again[:, :3], out[:, :3], atol=1e-6)
    assert not torch.allclose(again[:, 3], out[:, 3], atol=1e-3)


@pytest.mark.parametrize("n_layers", [1, 2])
def test_cached_conditionals_equal_the_full_forward_at_every_position(n_layers):
    """The decoders' one-position-per-call path (cached keys and values) against forward() on the prefix,
    and the recomputing default of JointHead against both."""
    h = head(n_layers=n_layers)
    hidden, positions, tokens, base = inputs(k=6)
    full = h(hidden, positions, tokens, base)
    cached = h.incremental(hidden, positions, base)
    recomputed = JointHead.incremental(h, hidden, positions, base)
    for j in range(1, 6):
        step = cached.next(tokens[:, :j])
        assert torch.allclose(step, full[:, j], atol=1e-5), j
        assert torch.allclose(recomputed.next(tokens[:, :j]), full[:, j], atol=1e-6), j
    with pytest.raises(ValueError, match="expected the step's first 6 tokens, got 2"):
        cached.next(tokens[:, :2])


def test_training_subsets_are_sorted_masked_positions_inside_one_window():
    h = head(subset_size=4, window=6)
    masked = torch.rand(200, L, generator=torch.Generator().manual_seed(2)) < 0.6
    masked[:, :5] = False  # a prompt
    positions, valid = h.sample_subsets(masked, torch.Generator().manual_seed(3))
    assert positions.shape == (200, 4)
    sizes = valid.sum(dim=1)
    assert sizes.max() <= 4 and (sizes >= 1).all()
    assert set(sizes.tolist()) >= {2, 3, 4}
    for row, count in enumerate(sizes.tolist()):
        chosen = positions[row, :count]
        assert masked[row, chosen].all()
        assert (chosen[1:] > chosen[:-1]).all()
        assert chosen[-1] - chosen[0] < 6
        assert not valid[row, count:].any()


def test_confident_subsets_are_the_windows_most_confident_masked_positions():
    h = head(subset_size=3, window=5, confident_share=1.0)
    masked = torch.tensor([[False, True, True, False, True, True, True, True]])
    p_max = torch.tensor([[0.99, 0.2, 0.9, 0.99, 0.5, 0.95, 0.3, 0.99]])
    of_size_three = set()
    for seed in range(60):
        positions, valid = h.sample_subsets(masked, torch.Generator().manual_seed(seed), p_max.log())
        chosen = positions[0, valid[0]].tolist()
        if len(chosen) == 3:
            of_size_three.add(tuple(chosen))
    # windows from the masked anchors 1, 2 | 4 | 5 (6 and 7 hold fewer than 3 masks); the visible 0.99s never
    assert of_size_three == {(2, 4, 5), (4, 5, 7), (5, 6, 7)}


def test_confident_share_picks_that_share_of_rows_by_confidence():
    h = head(subset_size=2, window=8, confident_share=0.25)
    masked = torch.ones(4000, 8, dtype=torch.bool)
    p_max = torch.linspace(0.1, 0.9, 8).expand(4000, 8)  # the last two positions are the most confident
    positions, valid = h.sample_subsets(masked, torch.Generator().manual_seed(0), p_max.log())
    top_two = (positions == torch.tensor([6, 7])).all(dim=1) & valid.all(dim=1)
    # the anchor a is uniform over 0..7 and the window holds a..7; by confidence a row takes {6, 7} when
    # a <= 6, at random with chance 1 / C(8 - a, 2)
    by_chance = sum(1 / math.comb(8 - a, 2) for a in range(7)) / 8
    expected = 0.25 * 7 / 8 + 0.75 * by_chance
    assert abs(top_two.float().mean().item() - expected) < 0.03
    untouched = head(subset_size=2, window=8)  # confident_share = 0: the random rule, same draws as before
    assert torch.equal(untouched.sample_subsets(masked, torch.Generator().manual_seed(0))[0],
                       untouched.sample_subsets(masked, torch.Generator().manual_seed(0), p_max.log())[0])


def test_loss_is_the_cross_entropy_of_positions_after_the_first():
    h = head(subset_size=4, window=6)
    g = torch.Generator().manual_seed(5)
    x0 = torch.randint(0, V, (6, L), generator=g)
    masked = torch.rand(6, L, generator=g) < 0.7
    hidden = torch.randn(6, L, D, generator=g)
    log_probs = torch.randn(6, L, V, generator=g).log_softmax(-1)
    loss = h.loss(x0, masked, hidden, log_probs, torch.Generator().manual_seed(9))
    positions, valid = h.sample_subsets(masked, torch.Generator().manual_seed(9))
    rows = torch.arange(6).unsqueeze(1)
    log_q = h(hidden[rows, positions], positions, x0[rows, positions], log_probs[rows, positions])
    nll = -log_q.gather(-1, x0[rows, positions].unsqueeze(-1)).squeeze(-1)
    scored = valid.clone()
    scored[:, 0] = False
    assert scored.sum() > 0
    assert torch.allclose(loss, nll[scored].mean())


def test_bad_head_settings_name_their_key():
    with pytest.raises(ConfigError, match=r"^subset_size=1 is invalid"):
        DependencyHead(D, V, L, subset_size=1)
    with pytest.raises(ConfigError, match=r"^confident_share=1.5 is invalid: must be in \[0, 1\]"):
        DependencyHead(D, V, L, confident_share=1.5)
    with pytest.raises(ConfigError, match=r"^n_heads=3 is invalid: must divide the backbone width d_model=16"):
        DependencyHead(D, V, L, n_heads=3)


# ---- the head inside the LightningModule -------------------------------------------------------------
@pytest.fixture(scope="module")
def built():
    cfg = compose_config(["model=tiny", "data.train_size=64", "data.val_size=8", "data.test_size=8",
                          "data.batch_size=16", "decoder=joint", "head=dependency"])
    datamodule = build(cfg, "data")
    return build_module(cfg, datamodule.data_info()), next(iter(datamodule.train_dataloader()))


def test_module_owns_trains_and_saves_the_head(built):
    module, _ = built
    head_params = {id(p) for p in module.dependency_head.parameters()}
    optimizer = module.optimizer_factory(params=module.parameters())
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert head_params and head_params <= optimized
    assert any(key.startswith("dependency_head.") for key in module.state_dict())
    assert module.decode_context().dependency_head is module.dependency_head


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_training_loss_adds_the_weighted_head_loss(built):
    module, batch = built
    module.train()
    losses = {}
    for weight in (0.0, 0.5, 1.0):
        module.dependency_head.loss_weight = weight
        losses[weight] = module.training_step(batch, 0).item()  # reseeds: same noise and subsets each time
    module.dependency_head.loss_weight = 1.0
    head_loss = losses[1.0] - losses[0.0]
    assert head_loss > 0.5  # an untrained head: about ln(vocabulary) nats
    assert losses[0.5] - losses[0.0] == pytest.approx(0.5 * head_loss, rel=1e-4)
