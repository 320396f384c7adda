"""Token-marginal decoding, LLaDA-style: the block decoder with every chosen position drawn independently
from its marginal (the decoder the marginal trap is about; ``block.py`` has the steps and options)."""

from __future__ import annotations

from dlm_lightning.decoders.block import BlockDecoder


class MarginalDecoder(BlockDecoder):
    """Independent draws from the token marginals: ``BlockDecoder``'s own ``_fill``."""
