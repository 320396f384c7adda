"""cache: none | prefix | dual for every block decoder."""

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from cache_cases import ANSWER, BLOCK, DECODERS, PROMPT, RECORDED_DECODERS, context, decode, prompts
from dlm_lightning.decoders.marginal import MarginalDecoder
from dlm_lightning.errors import ConfigError
from dlm_lightning.models.denoiser import Denoiser

RECORDED = json.loads((Path(__file__).parent / "data" / "block_decoders_188e957.json").read_text())
CASES = [(name, positions) for positions in ("rotary", "learned") for name in RECORDED_DECODERS]


@pytest.mark.parametrize("name,positions", CASES)
def test_cache_none_reproduces_the_decoders_before_caching(name, positions):
    """Tokens, commit steps and NFE recorded from commit 188e957 (before this feature) with the same seeds."""
    out, recorded = decode(name, positions, cache="none"), RECORDED[f"{name}/{positions}"]
    assert out.tokens.tolist() == recorded["tokens"]
    assert out.commit_step.tolist() == recorded["commit_step"]
    assert out.nfe == recorded["nfe"]


@pytest.mark.parametrize("mode", ["prefix", "dual"])
@pytest.mark.parametrize("name", list(DECODERS))
def test_refreshing_at_every_step_is_bit_identical_to_no_cache(name, mode):
    out, uncached = decode(name, "rotary", cache=mode, refresh_every=1), decode(name, "rotary", cache="none")
    assert torch.equal(out.tokens, uncached.tokens) and out.nfe == uncached.nfe


@pytest.mark.parametrize("mode", ["prefix", "dual"])
@pytest.mark.parametrize("name", list(DECODERS))
def test_with_one_layer_the_cache_is_exact_and_decodes_the_same_tokens(name, mode):
    """One layer: keys outside the current block depend only on their own (unchanged) tokens, so the
    cached decode must match the uncached one, including the threshold decoder whose rows sit in
    different blocks."""
    cls, options = DECODERS[name]
    reference = cls(block_length=BLOCK, **options).decode(context(n_layers=1), prompts(), ANSWER,
                                                          torch.Generator().manual_seed(5))
    cached = cls(block_length=BLOCK, cache=mode, **options).decode(context(n_layers=1), prompts(), ANSWER,
                                                                   torch.Generator().manual_seed(5))
    assert torch.equal(cached.tokens, reference.tokens)
    assert torch.equal(cached.commit_step, reference.commit_step)


@pytest.mark.parametrize("mode", ["prefix", "dual"])
@pytest.mark.parametrize("name", list(DECODERS))
def test_every_block_decoder_runs_with_every_cache_mode(name, mode):
    out = decode(name, "learned", cache=mode)
    answers = out.tokens[:, PROMPT:]
    assert torch.equal(out.tokens[:, :PROMPT], prompts())
    assert (answers != 1).all() and (out.commit_step >= 0).all()
    if "threshold" not in DECODERS[name][1] and name != "speculative":  # a fixed count per step
        assert out.nfe == ANSWER // DECODERS[name][1]["tokens_per_step"]


class CountingDenoiser(Denoiser):
    def __init__(self, denoiser: Denoiser):
        super().__init__(denoiser.backbone, denoiser.mask_id, denoiser.needs_time)
        self.calls: list[tuple[str, int]] = []

    def fill(self, z, t, cache):
        self.calls.append(("fill", z.shape[1]))
        return super().fill(z, t, cache)

    def forward_span(self, z, t, start, width, cache):
        self.calls.append(("span", width))
        return super().forward_span(z, t, start, width, cache)


@pytest.mark.parametrize("mode,refresh_every,expected", [
    # 16 answer tokens, blocks of 4, 2 tokens per step: 4 blocks of 2 steps
    ("dual", None, [("fill", 20), ("span", 4)] * 4),
    ("prefix", None, [("fill", 20), ("span", 16), ("fill", 20), ("span", 12), ("fill", 20), ("span", 8),
                      ("fill", 20), ("span", 4)]),
    ("dual", 1, [("fill", 20)] * 8),
])
def test_the_cache_is_filled_at_each_new_block_and_every_refresh_every_steps(mode, refresh_every, expected):
    ctx = context()
    ctx.denoiser = CountingDenoiser(ctx.denoiser)
    MarginalDecoder(tokens_per_step=2, block_length=BLOCK, cache=mode, refresh_every=refresh_every).decode(
        ctx, prompts(), ANSWER, torch.Generator().manual_seed(5))
    assert ctx.denoiser.calls == expected


def test_refresh_every_two_refills_inside_a_block():
    ctx = context()
    ctx.denoiser = CountingDenoiser(ctx.denoiser)
    MarginalDecoder(tokens_per_step=1, block_length=BLOCK, cache="dual", refresh_every=2).decode(
        ctx, prompts(), ANSWER, torch.Generator().manual_seed(5))
    assert ctx.denoiser.calls == [("fill", 20), ("span", 4)] * 8  # 4 steps per block


class NoCacheBackbone(nn.Module):
    def forward(self, z, t=None):
        raise AssertionError("must be refused before any forward")


@pytest.mark.parametrize("options,message", [
    ({"cache": "full"}, "cache='full' is invalid: one of none, prefix, dual"),
    ({"cache": "dual", "refresh_every": 0}, "refresh_every=0 is invalid: must be null"),
])
def test_bad_cache_options_name_the_key(options, message):
    with pytest.raises(ConfigError, match=message):
        MarginalDecoder(**options)


@pytest.mark.parametrize("needs_time,message", [
    (False, "cache='dual' is invalid: needs a backbone with a key/value cache and NoCacheBackbone has none"),
    (True, "cache='dual' is invalid: needs a backbone without time conditioning"),
])
def test_unsupported_backbones_are_refused_before_decoding(needs_time, message):
    ctx = context()
    backbone = NoCacheBackbone() if not needs_time else ctx.denoiser.backbone
    ctx.denoiser = Denoiser(backbone, 1, needs_time=needs_time)
    with pytest.raises(ConfigError, match=message):
        MarginalDecoder(block_length=BLOCK, cache="dual").decode(ctx, prompts(), ANSWER)
    MarginalDecoder(block_length=BLOCK, cache="none").check_denoiser(ctx.denoiser)  # no cache: allowed


@pytest.mark.parametrize("overrides,message", [
    (["schedule=info", "decoder.cache=dual"], "decoder.cache='dual' is invalid: needs a backbone without time"),
    (["decoder=joint", "head=dependency", "decoder.cache=prefix", "decoder.refresh_every=0"],
     "decoder.refresh_every=0 is invalid"),
])
def test_the_run_refuses_a_cache_it_cannot_use_before_training(compose, tiny_overrides, tiny_info, overrides, message):
    from dlm_lightning.build import build_module

    with pytest.raises(ConfigError, match=message):
        build_module(compose([*tiny_overrides, *overrides]), tiny_info)


def test_the_default_run_config_builds_with_a_cache(compose, tiny_overrides, tiny_info):
    from dlm_lightning.build import build_module

    module = build_module(compose([*tiny_overrides, "decoder=threshold", "decoder.cache=dual"]), tiny_info)
    assert module.decoder.cache == "dual" and module.decoder.threshold == 0.9
