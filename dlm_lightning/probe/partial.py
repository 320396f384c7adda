"""The collapse probe where decoders meet it: partially decoded states, and the number of appended masks.

``probe_partial_states``: a decoder runs on each prompt and is stopped at its (s + 1)-th denoiser call,
so the canvas holds what s calls committed (s = 0 is the all-masked probe); the prediction it was about
to act on is read at every still-masked position. Statistics are binned two ways: by the distance to
the nearest visible token (the prompt end or any committed token; ``near/...``) and by the distance to
the prompt end (``prompt/...``). Any decoder works: only its denoiser calls are intercepted.

``mask_count_sensitivity``: the all-masked probe with different numbers of appended masks (the paper's
128 against the trained answer length), P(EOS) and KL to the corpus unigram per position.
"""

from __future__ import annotations

import torch

from dlm_lightning.decoders.base import DecodeContext
from dlm_lightning.errors import require
from dlm_lightning.metrics.positions import distance_buckets
from dlm_lightning.probe.stats import entropy, kl_divergence

# Distance bins (inclusive) for the distance to the nearest visible token
NEAR_BINS = ((1, 1), (2, 2), (3, 4), (5, 8), (9, 16), (17, 10_000))


class _Stop(Exception):
    pass


class _Capture(torch.nn.Module):
    """A denoiser that answers ``calls`` calls, then records the next input and prediction and stops."""

    def __init__(self, denoiser, calls: int):
        super().__init__()
        self.denoiser, self.calls, self.seen = denoiser, calls, 0
        self.z = self.log_probs = None

    def forward(self, z, t):
        out = self.denoiser(z, t)
        if self.seen == self.calls:
            self.z, self.log_probs = z.clone(), out.log_probs
            raise _Stop
        self.seen += 1
        return out


def nearest_visible_distance(masked: torch.Tensor) -> torch.Tensor:
    """[B, L] distance from each position to the nearest unmasked position (0 where unmasked)."""
    length = masked.shape[1]
    positions = torch.arange(length, device=masked.device)
    visible = ~masked
    gap = (positions[:, None] - positions[None, :]).abs()  # [L, L]
    far = torch.full_like(gap, length + 1)
    return torch.where(visible[:, None, :], gap, far).min(dim=-1).values


def capture_state(decoder, context: DecodeContext, prompts: torch.Tensor, answer_length: int, calls: int,
                  generator: torch.Generator | None):
    """(z, log_probs) seen by ``decoder``'s denoiser call number ``calls`` (0-based), or None if it finished."""
    capture = _Capture(context.denoiser, calls)
    spy = DecodeContext(capture, context.schedule, context.mask_id, context.eos_id, context.dependency_head,
                        context.pad_ids)
    try:
        decoder.decode(spy, prompts, answer_length, generator)
    except _Stop:
        return capture.z, capture.log_probs
    return None


def state_stats(z: torch.Tensor, log_probs: torch.Tensor, prompt_length: int, mask_id: int,
                end_ids: tuple[int, ...], log_unigram: torch.Tensor) -> dict[str, list[float]]:
    """Per masked answer position: near / prompt distance, P(end), entropy and KL to the unigram."""
    masked = z == mask_id
    near = nearest_visible_distance(masked)[:, prompt_length:]
    answer_masked = masked[:, prompt_length:]
    log_p = log_probs[:, prompt_length:].double()
    prompt_distance = torch.arange(answer_masked.shape[1], device=z.device).expand_as(answer_masked)
    p_end = log_p.exp()[..., list(end_ids)].sum(-1)
    values = {"near": near, "prompt": prompt_distance, "p_end": p_end, "entropy": entropy(log_p),
              "kl_unigram": kl_divergence(log_p, log_unigram.double().to(z.device))}
    return {key: value[answer_masked].tolist() for key, value in values.items()}


def bin_means(stats: dict[str, list[float]], key: str, bins, names=("p_end", "entropy", "kl_unigram")) -> dict:
    """Mean of each statistic per bin of ``stats[key]`` (``count`` too); empty bins are left out."""
    distance = torch.tensor(stats[key])
    out = {}
    for first, last in bins:
        inside = (distance >= first) & (distance <= last)
        if not inside.any():
            continue
        label = f"{key}/d{first:02d}-{min(last, 99):02d}"
        out[f"{label}/count"] = float(inside.sum())
        for name in names:
            out[f"{label}/{name}"] = float(torch.tensor(stats[name], dtype=torch.float64)[inside].mean())
    return out


def probe_partial_states(decoder, context: DecodeContext, prompts: torch.Tensor, answer_length: int,
                         calls: list[int], log_unigram: torch.Tensor, end_ids: tuple[int, ...],
                         seed: int = 0, prompt_bins: int = 4) -> dict[int, dict]:
    """calls -> binned statistics of the still-masked positions after that many denoiser calls."""
    require(len(calls) > 0 and all(isinstance(c, int) and c >= 0 for c in calls), "calls", calls,
            "one or more integers >= 0 (denoiser calls made before the state is read)")
    prompt_length = prompts.shape[1]
    results = {}
    for n in calls:
        captured = capture_state(decoder, context, prompts, answer_length, n, torch.Generator().manual_seed(seed))
        if captured is None:
            continue  # the decoder finished in fewer calls
        stats = state_stats(*captured, prompt_length, context.mask_id, end_ids, log_unigram)
        results[n] = {"masked": len(stats["near"]),
                      **bin_means(stats, "near", NEAR_BINS),
                      **bin_means(stats, "prompt", distance_buckets(answer_length, prompt_bins))}
    return results


def mask_count_sensitivity(model, prompts: list[str], counts: list[int], unigram: torch.Tensor | None = None,
                           batch_size: int = 16) -> dict[int, dict[str, list[float]]]:
    """n_masks -> mean P(EOS) (and KL to ``unigram``) per position, for a probe ``ProbeModel``."""
    require(len(counts) > 0 and all(isinstance(n, int) and n >= 1 for n in counts), "n_masks", counts,
            "one or more integers >= 1")
    encoded = [model.encode(text) for text in prompts]
    out = {}
    for n in counts:
        log_p = torch.cat([model.mask_log_probs(encoded[i: i + batch_size], n).double()
                           for i in range(0, len(encoded), batch_size)])
        row = {"p_eos": log_p[..., model.eos_id].exp().mean(0).tolist()} if model.eos_id is not None else {}
        if unigram is not None:
            row["kl_unigram"] = kl_divergence(log_p, unigram.double().log().to(log_p.device)).mean(0).tolist()
        out[n] = row
    return out
