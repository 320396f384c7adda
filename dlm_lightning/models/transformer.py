"""A pre-norm transformer backbone with SDPA attention and optional time conditioning; bidirectional
unless ``causal`` (the autoregressive baseline)."""

from __future__ import annotations

import math
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from dlm_lightning.errors import require, require_positive
from dlm_lightning.models.kv_cache import KVCache

POSITIONS = ("rotary", "learned")


def attention_kernel(attention: str, device_type: str) -> SDPBackend | None:
    """The SDPA backend to force for ``attention`` on this device (None: PyTorch chooses)."""
    if attention == "auto":
        return SDPBackend.MATH if device_type == "cpu" else None
    return ATTENTION_KERNELS[attention]
# "default" lets PyTorch choose; on a 2-core CPU at L=64 "math" trains 2.2x faster than its flash kernel,
# so "auto" takes "math" on a CPU and lets PyTorch pick its fused kernels (flash, efficient) on a GPU
ATTENTION_KERNELS = {"auto": None, "default": None, "math": SDPBackend.MATH, "flash": SDPBackend.FLASH_ATTENTION,
                     "efficient": SDPBackend.EFFICIENT_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}


class Rotary(nn.Module):
    def __init__(self, head_dim: int, max_len: int, base: float = 10_000.0):
        super().__init__()
        freqs = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = torch.outer(torch.arange(max_len, dtype=torch.float32), freqs)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """x: [B, H, L, Dh] at positions 0..L-1, or at ``positions`` [B, L] when given."""
        if positions is None:
            length = x.shape[-2]
            cos, sin = self.cos[:length].to(x.dtype), self.sin[:length].to(x.dtype)
        else:
            cos, sin = self.cos[positions].unsqueeze(1).to(x.dtype), self.sin[positions].unsqueeze(1).to(x.dtype)
        even, odd = x[..., 0::2], x[..., 1::2]
        return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)


class Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int, mlp_ratio: int, dropout: float, rotary: Rotary | None,
                 time_conditioning: bool, causal: bool = False):
        super().__init__()
        self.n_heads, self.dropout, self.rotary, self.causal = n_heads, dropout, rotary, causal
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.proj = nn.Linear(d_model, d_model, bias=False)
        self.mlp = nn.Sequential(nn.Linear(d_model, mlp_ratio * d_model), nn.GELU(),
                                 nn.Linear(mlp_ratio * d_model, d_model))
        # adaLN: the time embedding shifts and scales both norms; zero-init so training starts time-blind
        self.modulation = nn.Linear(d_model, 4 * d_model) if time_conditioning else None
        if self.modulation is not None:
            nn.init.zeros_(self.modulation.weight)
            nn.init.zeros_(self.modulation.bias)

    def forward(self, h: torch.Tensor, cond: torch.Tensor | None, cache: KVCache | None = None, layer: int = 0,
                positions: torch.Tensor | None = None) -> torch.Tensor:
        """``cache`` without ``positions``: a full forward that fills it; with them: a span forward."""
        a, m = self.norm1(h), None
        if self.modulation is not None and cond is not None:
            m = self.modulation(cond)[:, None, :].chunk(4, dim=-1)
            a = torch.addcmul(m[1], a, 1 + m[0])  # a * (1 + scale) + shift, fused: ~3% of a step here
        h = h + F.dropout(self.proj(self._attention(a, cache, layer, positions)), self.dropout, self.training)
        b = self.norm2(h)
        if m is not None:
            b = torch.addcmul(m[3], b, 1 + m[2])
        return h + F.dropout(self.mlp(b), self.dropout, self.training)

    def _attention(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0,
                   positions: torch.Tensor | None = None) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)
        if self.rotary is not None:
            q, k = self.rotary(q, positions), self.rotary(k, positions)
        if cache is not None and positions is None:
            cache.store(layer, k, v)
        elif cache is not None:
            k, v = cache.update(layer, positions, k, v)
        # a causal backbone never reads a cache (supports_kv_cache is False): queries and keys align
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                             is_causal=self.causal)
        return out.transpose(1, 2).reshape(batch, length, width)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = 1000.0 * t.float().reshape(-1, 1) * freqs
    return torch.cat((angles.cos(), angles.sin()), dim=-1)


class Transformer(nn.Module):
    """Maps token ids [B, L] (and t [B] when time-conditioned) to logits [B, L, V] and hidden states."""

    def __init__(self, vocab_size: int, max_seq_len: int, d_model: int = 128, n_layers: int = 2,
                 n_heads: int = 4, mlp_ratio: int = 4, dropout: float = 0.0, positions: str = "rotary",
                 attention: str = "default", time_conditioning: bool = False, causal: bool = False):
        super().__init__()
        require_positive(d_model=d_model, n_layers=n_layers, n_heads=n_heads, mlp_ratio=mlp_ratio,
                         vocab_size=vocab_size, max_seq_len=max_seq_len)
        require(d_model % n_heads == 0, "n_heads", n_heads, f"must divide d_model={d_model}")
        require((d_model // n_heads) % 2 == 0 or positions != "rotary", "n_heads", n_heads,
                f"must leave an even head width (d_model/n_heads) for rotary positions")
        require(0.0 <= dropout < 1.0, "dropout", dropout, "must be in [0, 1)")
        require(positions in POSITIONS, "positions", positions, f"one of {', '.join(POSITIONS)}")
        require(attention in ATTENTION_KERNELS, "attention", attention, f"one of {', '.join(ATTENTION_KERNELS)}")
        self.attention = attention
        self.vocab_size, self.max_seq_len, self.d_model = vocab_size, max_seq_len, d_model
        self.time_conditioning, self.causal = time_conditioning, causal  # causal: objective=autoregressive
        self.supports_kv_cache = not causal  # the cached span forward attends both ways
        self.embed = nn.Embedding(vocab_size, d_model)
        self.position = nn.Embedding(max_seq_len, d_model) if positions == "learned" else None
        rotary = Rotary(d_model // n_heads, max_seq_len) if positions == "rotary" else None
        self.time_mlp = (nn.Sequential(nn.Linear(d_model, d_model), nn.SiLU(), nn.Linear(d_model, d_model))
                         if time_conditioning else None)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, mlp_ratio, dropout, rotary, time_conditioning, causal)
                                    for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)

    #: forward_span and KVCache work with this backbone (decoders' cache=prefix|dual need it)
    def forward(self, tokens: torch.Tensor, t: torch.Tensor | None = None,
                cache: KVCache | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A full forward; ``cache`` (from ``new_cache``), when given, is filled with every layer's keys and values."""
        length = tokens.shape[1]
        if length > self.max_seq_len:
            raise ValueError(f"sequence length {length} exceeds the model's max_seq_len={self.max_seq_len}")
        h = self.embed(tokens)
        if self.position is not None:
            h = h + self.position.weight[:length]
        return self._layers(h, t, cache, None)

    def forward_span(self, tokens: torch.Tensor, positions: torch.Tensor, cache: KVCache,
                     t: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and hidden states [B, S, ...] of tokens [B, S] at sequence positions [B, S] (any per row),
        attending to the cache's keys and values elsewhere; their own keys and values are written into it."""
        # the check reads tensor values: skipped under torch.compile, where it would break the graph
        out_of_range = not torch.compiler.is_compiling() and (
            int(positions.max()) >= self.max_seq_len or int(positions.min()) < 0)
        if out_of_range:
            raise ValueError(f"positions must lie in [0, {self.max_seq_len}) (the model's max_seq_len)")
        h = self.embed(tokens)
        if self.position is not None:
            h = h + self.position(positions)
        return self._layers(h, t, cache, positions)

    def new_cache(self) -> KVCache:
        return KVCache(len(self.blocks))

    def _layers(self, h, t, cache, positions) -> tuple[torch.Tensor, torch.Tensor]:
        cond = None
        if self.time_mlp is not None:
            if t is None:
                raise ValueError("this backbone is time-conditioned: pass t")
            cond = self.time_mlp(timestep_embedding(t, self.d_model).to(h.dtype))
        kernel = attention_kernel(self.attention, h.device.type)
        with sdpa_kernel(kernel) if kernel is not None else nullcontext():
            for layer, block in enumerate(self.blocks):
                h = block(h, cond, cache, layer, positions) if cache is not None else block(h, cond)
        hidden = self.norm(h)
        return self.head(hidden), hidden
