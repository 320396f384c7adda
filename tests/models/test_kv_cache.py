"""Span forwards against a key/value cache: equal to a full forward wherever the cache is exact."""

import pytest
import torch

from dlm_lightning.models.transformer import Transformer

VOCAB, LENGTH, WIDTH = 11, 20, 4


def model(positions: str, n_layers: int = 2, time_conditioning: bool = False) -> Transformer:
    torch.manual_seed(0)
    backbone = Transformer(VOCAB, LENGTH, d_model=16, n_layers=n_layers, n_heads=2, mlp_ratio=2,
                           positions=positions, attention="math", time_conditioning=time_conditioning).eval()
    if time_conditioning:  # adaLN starts at zero: make t matter
        for block in backbone.blocks:
            torch.nn.init.normal_(block.modulation.weight, std=0.5)
    return backbone


def tokens(batch: int = 3) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, LENGTH), generator=torch.Generator().manual_seed(1))


def spans(start: list[int]) -> torch.Tensor:
    return torch.tensor(start).unsqueeze(1) + torch.arange(WIDTH)


@pytest.mark.parametrize("positions", ["rotary", "learned"])
def test_filling_the_cache_leaves_the_forward_bit_identical(positions):
    backbone, z = model(positions), tokens()
    cache = backbone.new_cache()
    with torch.no_grad():
        plain, filled = backbone(z), backbone(z, cache=cache)
    assert torch.equal(plain[0], filled[0]) and torch.equal(plain[1], filled[1])
    assert cache.filled and cache.keys[0].shape == (3, 2, LENGTH, 8)


@pytest.mark.parametrize("positions", ["rotary", "learned"])
def test_a_span_forward_right_after_a_fill_equals_the_full_forward_with_rows_in_different_blocks(positions):
    backbone, z = model(positions), tokens()
    at = spans([0, 8, 16])  # three rows, three different blocks (first, middle, last)
    with torch.no_grad():
        full_logits, full_hidden = backbone(z, cache=(cache := backbone.new_cache()))
        logits, hidden = backbone.forward_span(z.gather(1, at), at, cache)
    index = at.unsqueeze(-1)
    torch.testing.assert_close(logits, full_logits.gather(1, index.expand(-1, -1, VOCAB)), rtol=0, atol=1e-5)
    torch.testing.assert_close(hidden, full_hidden.gather(1, index.expand(-1, -1, 16)), rtol=0, atol=1e-5)


@pytest.mark.parametrize("positions", ["rotary", "learned"])
def test_edits_inside_the_span_are_exact_for_one_layer_and_approximate_for_two(positions):
    """With one layer the keys outside the span depend only on their own tokens, so a span whose tokens
    changed since the fill still matches a full forward; with two layers the cached keys are stale."""
    at = spans([4, 12, 0])
    z = tokens()
    edited = z.clone().scatter_(1, at[:, :2], 0)  # change two tokens inside each row's span
    for n_layers, exact in ((1, True), (2, False)):
        backbone = model(positions, n_layers)
        with torch.no_grad():
            backbone(z, cache=(cache := backbone.new_cache()))
            logits, _ = backbone.forward_span(edited.gather(1, at), at, cache)
            expected = backbone(edited)[0].gather(1, at.unsqueeze(-1).expand(-1, -1, VOCAB))
        assert torch.allclose(logits, expected, rtol=0, atol=1e-5) == exact, n_layers


def test_time_conditioned_span_forward_matches_at_the_fill_time():
    backbone, z, t = model("rotary", time_conditioning=True), tokens(), torch.tensor([0.2, 0.5, 0.9])
    at = spans([0, 8, 16])
    with torch.no_grad():
        full, _ = backbone(z, t, cache=(cache := backbone.new_cache()))
        logits, _ = backbone.forward_span(z.gather(1, at), at, cache, t)
        later, _ = backbone.forward_span(z.gather(1, at), at, cache, t / 2)
    expected = full.gather(1, at.unsqueeze(-1).expand(-1, -1, VOCAB))
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-5)
    assert not torch.allclose(later, expected, atol=1e-3)  # another t: the modulation differs


def test_span_forward_errors():
    backbone, z = model("rotary"), tokens()
    at = spans([0, 8, 16])
    with pytest.raises(RuntimeError, match="cache is empty"):
        backbone.forward_span(z.gather(1, at), at, backbone.new_cache())
    backbone(z, cache=(cache := backbone.new_cache()))
    with pytest.raises(ValueError, match=r"positions must lie in \[0, 20\)"):
        backbone.forward_span(z[:, :WIDTH], spans([0, 8, 17]), cache)
