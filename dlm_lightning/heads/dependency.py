"""The dependency head: a small causal transformer that turns a step's k marginals into a joint.

For the positions sigma(1) < ... < sigma(k) committed in one step (left to right), input j is the
backbone's hidden state at sigma(j) + a position embedding + the embedding of the token chosen at
sigma(j-1) + an embedding of the gap sigma(j) - sigma(j-1), so the head knows whether that token is
its neighbour (without it, validity at 4 tokens per step fell from 0.75 to 0.52 in a test; see
docs/decoders.md). Causal attention over j' <= j gives p(x_sigma(j) | z_t, x_sigma(<j)). The output
is a correction added to the backbone's log-probabilities at sigma(j), zero-initialised, and forced to
zero for j = 1: the first token of a step is drawn from its marginal, so k = 1 is exactly the
marginal decoder and an untrained head is a product of marginals.

Training (``loss``): on the NELBO forward pass, each sequence picks a subset of 2 to ``subset_size``
masked positions inside a window of ``window`` positions that starts at a random masked position
(decoding commits inside one block), and the head is scored autoregressively on it with teacher
forcing. The subset is random, or, for a ``confident_share`` of the sequences, the window's most
confident masked positions (largest marginal max-probability): the positions a low-confidence
decoder commits together, whose dependencies the head most needs to get right. Gradients reach the backbone through the hidden states, not through the
marginals it corrects (the NELBO alone trains those).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlm_lightning.errors import require, require_positive
from dlm_lightning.heads.base import Conditionals, JointHead


class DependencyHead(JointHead):
    def __init__(self, d_model: int, vocab_size: int, max_seq_len: int, n_layers: int = 2, n_heads: int = 4,
                 mlp_ratio: int = 2, subset_size: int = 8, window: int = 8, loss_weight: float = 1.0,
                 confident_share: float = 0.0):
        super().__init__()
        require_positive(d_model=d_model, vocab_size=vocab_size, max_seq_len=max_seq_len, n_layers=n_layers,
                         n_heads=n_heads, mlp_ratio=mlp_ratio)
        require(d_model % n_heads == 0, "n_heads", n_heads, f"must divide the backbone width d_model={d_model}")
        require(isinstance(subset_size, int) and subset_size >= 2, "subset_size", subset_size,
                "must be an integer >= 2 (a subset of one position has no dependency to learn)")
        require(isinstance(window, int) and window >= 2, "window", window, "must be an integer >= 2")
        require(loss_weight >= 0, "loss_weight", loss_weight, "must be >= 0")
        require(0.0 <= confident_share <= 1.0, "confident_share", confident_share,
                "must be in [0, 1] (the share of training subsets chosen by confidence)")
        self.subset_size, self.window, self.loss_weight = subset_size, window, loss_weight
        self.confident_share = float(confident_share)
        self.start_id = vocab_size  # the "previous token" of the first position in a step
        self.token = nn.Embedding(vocab_size + 1, d_model)
        self.position = nn.Embedding(max_seq_len, d_model)
        self.gap = nn.Embedding(window + 1, d_model)  # 0: first in the step; gaps >= window share one entry
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d_model, n_heads, mlp_ratio * d_model, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, vocab_size)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def inputs(self, hidden: torch.Tensor, positions: torch.Tensor, previous: torch.Tensor,
               gap: torch.Tensor) -> torch.Tensor:
        """The first layer's input at each position: hidden state + previous token + position + gap."""
        return hidden + self.token(previous) + self.position(positions) + self.gap(gap.clamp(0, self.window))

    def output(self, h: torch.Tensor, base_log_probs: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
        """log q from the last layer's states; ``first`` marks entries whose correction is forced to 0."""
        correction = self.out(self.norm(h)).float().masked_fill(first.unsqueeze(-1), 0.0)
        return (base_log_probs.float() + correction).log_softmax(dim=-1)

    def incremental(self, hidden: torch.Tensor, positions: torch.Tensor, base_log_probs: torch.Tensor) -> Conditionals:
        return CachedConditionals(self, hidden, positions, base_log_probs)

    def forward(self, hidden: torch.Tensor, positions: torch.Tensor, tokens: torch.Tensor,
                base_log_probs: torch.Tensor) -> torch.Tensor:
        """log p(x_sigma(j) | z_t, x_sigma(<j)), float32 [B, k, V].

        hidden [B, k, D] and base_log_probs [B, k, V] are the backbone's at positions [B, k] (sequence
        indices, in the step's order); tokens [B, k] are the tokens at those positions (entry j is
        read only by entries after j).
        """
        k = tokens.shape[1]
        previous = torch.cat([torch.full_like(tokens[:, :1], self.start_id), tokens[:, :-1]], dim=1)
        gap = torch.cat([torch.zeros_like(positions[:, :1]), positions.diff(dim=1)], dim=1)
        h = self.inputs(hidden, positions, previous, gap)
        causal = nn.Transformer.generate_square_subsequent_mask(k, device=h.device, dtype=h.dtype)
        for layer in self.layers:
            h = layer(h, src_mask=causal, is_causal=True)
        return self.output(h, base_log_probs, (torch.arange(k, device=h.device) == 0).view(1, k))

    def loss(self, x0: torch.Tensor, masked: torch.Tensor, hidden: torch.Tensor, log_probs: torch.Tensor,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean autoregressive cross-entropy (nats) of positions 2..m of random masked subsets.

        x0, masked: [B, L]; hidden [B, L, D] and log_probs [B, L, V] from the denoiser on z_t.
        """
        confidence = log_probs.detach().amax(dim=-1) if self.confident_share > 0 else None
        positions, valid = self.sample_subsets(masked, generator, confidence)
        index = positions.unsqueeze(-1)
        h = hidden.gather(1, index.expand(-1, -1, hidden.shape[-1]))
        base = log_probs.detach().gather(1, index.expand(-1, -1, log_probs.shape[-1]))
        tokens = x0.gather(1, positions)
        log_q = self(h, positions, tokens, base)
        scored = valid.clone()
        scored[:, 0] = False  # the first of a subset is its marginal: nothing for the head to learn
        nll = F.nll_loss(log_q.flatten(0, 1), tokens.flatten(), reduction="none").view_as(tokens)
        return (nll * scored).sum() / scored.sum().clamp_min(1)

    def sample_subsets(self, masked: torch.Tensor, generator: torch.Generator | None = None,
                       confidence: torch.Tensor | None = None):
        """Left-to-right positions [B, subset_size] and which of them are real [B, subset_size].

        ``confidence`` [B, L] (log max-probability per position) is needed when ``confident_share`` > 0:
        those rows take the window's most confident masked positions instead of random ones.
        """
        batch, length = masked.shape
        device = masked.device
        pos = torch.arange(length, device=device)
        noise = torch.rand((batch, length), generator=generator, device=device)
        anchor = torch.where(masked, noise, 2.0).argmin(dim=1, keepdim=True)  # a random masked position
        candidates = masked & (pos >= anchor) & (pos < anchor + self.window)
        size = torch.randint(2, self.subset_size + 1, (batch, 1), generator=generator, device=device)
        score = torch.rand((batch, length), generator=generator, device=device)
        if self.confident_share > 0:
            by_confidence = torch.rand((batch, 1), generator=generator, device=device) < self.confident_share
            # (1 - p_max) in [0, 1): smallest first; ties keep the random order below
            doubt = 1.0 - confidence.float().exp()
            score = torch.where(by_confidence, doubt + 1e-6 * score, score)
        score = torch.where(candidates, score, 2.0)
        rank = score.argsort(dim=1).argsort(dim=1)
        chosen = candidates & (rank < size)
        width = min(self.subset_size, length)
        positions = torch.where(chosen, pos, length + pos).argsort(dim=1)[:, :width]
        return positions, chosen.gather(1, positions)


class CachedConditionals(Conditionals):
    """The head's conditionals one position per call, with each layer's keys and values of the earlier
    positions cached: a call costs one position's work instead of the whole prefix's (what makes the
    k - 1 sequential calls of a k-token step cheap). Same parameters and arithmetic as ``forward`` (pre-norm
    layers, causal attention), equal to it up to float rounding (tested)."""

    def __init__(self, head: DependencyHead, hidden, positions, base_log_probs):
        self.head, self.hidden, self.positions, self.base = head, hidden, positions, base_log_probs
        self.keys: list[list[torch.Tensor]] = [[] for _ in head.layers]
        self.values: list[list[torch.Tensor]] = [[] for _ in head.layers]
        self.done = 0  # positions already in the cache
        self._extend(torch.full_like(positions[:, :1], head.start_id))  # position 0, the step's first token

    def next(self, tokens: torch.Tensor) -> torch.Tensor:
        j = tokens.shape[1]
        if j != self.done:
            raise ValueError(f"expected the step's first {self.done} tokens, got {j}")
        h = self._extend(tokens[:, -1:])
        return self.head.output(h, self.base[:, j: j + 1], torch.zeros(1, 1, dtype=torch.bool, device=h.device))[:, 0]

    def _extend(self, previous: torch.Tensor) -> torch.Tensor:
        j = self.done
        gap = self.positions[:, j: j + 1] - self.positions[:, max(j - 1, 0): max(j - 1, 0) + 1]
        h = self.head.inputs(self.hidden[:, j: j + 1], self.positions[:, j: j + 1], previous, gap)
        for layer, keys, values in zip(self.head.layers, self.keys, self.values):
            h = h + self._attend(layer, layer.norm1(h), keys, values)
            h = h + layer.linear2(layer.activation(layer.linear1(layer.norm2(h))))
        self.done += 1
        return h

    @staticmethod
    def _attend(layer: nn.TransformerEncoderLayer, x: torch.Tensor, keys: list, values: list) -> torch.Tensor:
        attention = layer.self_attn
        heads, batch = attention.num_heads, x.shape[0]
        q, k, v = F.linear(x, attention.in_proj_weight, attention.in_proj_bias).chunk(3, dim=-1)
        split = lambda t: t.view(batch, 1, heads, -1).transpose(1, 2)  # [B, H, 1, D/H]
        keys.append(split(k))
        values.append(split(v))
        out = F.scaled_dot_product_attention(split(q), torch.cat(keys, dim=2), torch.cat(values, dim=2))
        return attention.out_proj(out.transpose(1, 2).reshape(batch, 1, -1))
