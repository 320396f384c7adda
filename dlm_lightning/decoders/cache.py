"""Key/value caching for block decoders (Fast-dLLM's approximate cache), driven one step at a time.

- ``none``: every step is a full forward (the default; exact).
- ``prefix``: a step recomputes the current block and everything after it; the prompt and the finished
  blocks are read from the cache.
- ``dual``: a step recomputes the current block only; the prefix and the masked suffix are read from
  the cache.

The cache is filled by a full forward whenever a row enters a new block (that forward is the block's
first step, so NFE does not change) and, when ``refresh_every`` = N is set, at every N-th step of a block
(N = 1: every step is a full forward, the same tokens as ``none``).
Between fills the cached keys and values ignore the tokens committed since: an approximation, exact
for the step right after a fill. Time-conditioned backbones (schedule=info) are refused: their layers
are modulated by t, which changes at every step, so a refresh would be needed at every step.
"""

from __future__ import annotations

import torch

from dlm_lightning.errors import require
from dlm_lightning.models.denoiser import DenoiserOutput

CACHE_MODES = ("none", "prefix", "dual")


def check_cache_options(mode: str, refresh_every: int | None) -> None:
    require(mode in CACHE_MODES, "cache", mode, f"one of {', '.join(CACHE_MODES)}")
    require(refresh_every is None or (isinstance(refresh_every, int) and refresh_every >= 1), "refresh_every",
            refresh_every, "must be null (refresh when a block is finished) or an integer >= 1")


def check_cache_support(mode: str, denoiser: torch.nn.Module) -> None:
    """Refuses a cache the denoiser's backbone cannot serve, naming the key."""
    if mode == "none":
        return
    backbone = type(getattr(denoiser, "backbone", denoiser)).__name__
    require(getattr(denoiser, "supports_kv_cache", False), "cache", mode,
            f"needs a backbone with a key/value cache and {backbone} has none: use cache=none")
    require(not getattr(denoiser, "needs_time", False), "cache", mode,
            "needs a backbone without time conditioning: this schedule (e.g. info) modulates every layer "
            "by t, which changes at every step, so cached keys would be stale at once: use cache=none")


class BlockCache:
    """Calls the denoiser for one decode, ``mode`` deciding what each step recomputes."""

    def __init__(self, denoiser: torch.nn.Module, mode: str, refresh_every: int | None, block_length: int,
                 prompt_length: int):
        check_cache_support(mode, denoiser)
        self.denoiser, self.mode, self.refresh_every = denoiser, mode, refresh_every
        self.block_length, self.prompt_length = block_length, prompt_length
        self.cache, self.filled_blocks, self.age = None, None, 0  # age: steps served since the fill
        self.fills = 0  # full forwards so far (the rest of the calls were span forwards)

    def invalidate(self) -> None:
        """The next call fills the cache again (tokens were committed outside the step's span)."""
        self.cache = None

    def __call__(self, z: torch.Tensor, t: torch.Tensor, block: torch.Tensor) -> DenoiserOutput:
        """Denoiser outputs for this step; ``block`` [B] is each row's current block index."""
        if self.mode == "none":
            return self.denoiser(z, t)
        stale = (self.cache is None or not torch.equal(block, self.filled_blocks)
                 or (self.refresh_every is not None and self.age >= self.refresh_every))
        if stale:
            self.cache = self.denoiser.backbone.new_cache()
            self.filled_blocks, self.age = block.clone(), 1
            self.fills += 1
            return self.denoiser.fill(z, t, self.cache)
        self.age += 1
        start = self.prompt_length + block * self.block_length
        if self.mode == "dual":
            return self.denoiser.forward_span(z, t, start, self.block_length, self.cache)
        # prefix: from the earliest current block to the end, one span for all rows
        first = int(start.min())
        return self.denoiser.forward_span(z, t, start.new_full(start.shape, first), z.shape[1] - first, self.cache)
