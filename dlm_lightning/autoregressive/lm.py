"""Next-token log-probabilities, exact answer NLL and left-to-right sampling for a causal backbone.

The input is the sequence shifted right by one with a start token in front (the data's [MASK] id,
which never occurs in text), so position i is predicted from positions < i and every answer position,
the first included, gets an exact conditional: the NLL covers the same tokens as the diffusion bound.
"""

from __future__ import annotations

import torch

from dlm_lightning.decoders.base import DecodeOutput, Decoder, gumbel_argmax


def next_token_log_probs(backbone: torch.nn.Module, inputs: torch.Tensor, start_id: int) -> torch.Tensor:
    """float32 [B, T, V]: row i is log p(x_i | x_<i) for inputs = [start, x_0, ..., x_{T-2}].

    The start token is never predicted. A time-conditioned backbone (built for a schedule that
    needs time) is given t = 0 throughout: a constant, so the model stays autoregressive.
    """
    t = torch.zeros(inputs.shape[0], device=inputs.device) if backbone.time_conditioning else None
    logits, _ = backbone(inputs, t)
    logits = logits.float()
    logits[..., start_id] = float("-inf")
    return logits.log_softmax(dim=-1)


def shifted(x: torch.Tensor, start_id: int) -> torch.Tensor:
    """[start, x_0, ..., x_{L-2}]: the inputs whose outputs predict x_0 ... x_{L-1}."""
    return torch.cat([x.new_full((x.shape[0], 1), start_id), x[:, :-1]], dim=1)


def answer_nll(backbone: torch.nn.Module, x: torch.Tensor, prompt_length: int, start_id: int) -> torch.Tensor:
    """Exact -log p(answer | prompt) per position, nats [B, A] (A = L - prompt_length)."""
    log_probs = next_token_log_probs(backbone, shifted(x, start_id), start_id)[:, prompt_length:]
    return -log_probs.gather(-1, x[:, prompt_length:].unsqueeze(-1)).squeeze(-1)


@torch.no_grad()
def sample_left_to_right(backbone: torch.nn.Module, prompts: torch.Tensor, answer_length: int, start_id: int,
                         eos_id: int, decoder: Decoder, generator: torch.Generator | None = None) -> DecodeOutput:
    """One token per backbone call, left to right, with the decoder's sampling options (temperature,
    top_p, min_length; Gumbel-max in float64). No KV cache: call j reads the whole prefix."""
    batch, prompt_length = prompts.shape
    tokens = torch.cat([prompts.new_full((batch, 1), start_id), prompts], dim=1)
    for j in range(answer_length):
        log_probs = next_token_log_probs(backbone, tokens, start_id)[:, -1]
        weights, _ = decoder.sampling_weights(log_probs, torch.full((batch,), j, device=prompts.device), eos_id)
        tokens = torch.cat([tokens, gumbel_argmax(weights, generator).unsqueeze(1)], dim=1)
    commit_step = torch.arange(answer_length, device=prompts.device).expand(batch, -1)
    return DecodeOutput(tokens[:, 1:], nfe=answer_length, commit_step=commit_step.clone())
