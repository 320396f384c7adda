"""Keys and values of every layer for a whole sequence, so a forward pass can recompute only a few positions.

A full forward fills the cache; a span forward (``Transformer.forward_span``) computes its own positions'
keys and values, writes them in, and lets its queries attend to all positions: fresh ones for its span,
cached ones elsewhere. The cached ones are exact only while nothing they depend on has changed; in a
bidirectional model that is every token, so a decoder that edits the span uses an approximation (the
Fast-dLLM cache) that it bounds by refreshing.
"""

from __future__ import annotations

import torch


class KVCache:
    def __init__(self, n_layers: int):
        self.keys: list[torch.Tensor | None] = [None] * n_layers  # [B, H, L, Dh] each, keys after rotary
        self.values: list[torch.Tensor | None] = [None] * n_layers

    @property
    def filled(self) -> bool:
        return all(k is not None for k in self.keys)

    def store(self, layer: int, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Keeps a full forward's keys and values [B, H, L, Dh] of ``layer``."""
        self.keys[layer], self.values[layer] = keys, values

    def update(self, layer: int, positions: torch.Tensor, keys: torch.Tensor,
               values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Writes a span's keys and values [B, H, S, Dh] at sequence positions [B, S]; returns the layer's
        full keys and values [B, H, L, Dh] to attend to."""
        if self.keys[layer] is None:
            raise RuntimeError("the key/value cache is empty: run a full forward with this cache first")
        index = positions[:, None, :, None].expand(-1, keys.shape[1], -1, keys.shape[-1])
        self.keys[layer].scatter_(2, index, keys.to(self.keys[layer].dtype))
        self.values[layer].scatter_(2, index, values.to(self.values[layer].dtype))
        return self.keys[layer], self.values[layer]
