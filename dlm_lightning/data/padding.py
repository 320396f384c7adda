"""How prompt -> answer data fills the canvas after an answer, and where an answer ends.

Variants (``data.padding``):

- ``eos``: the answer is followed by [EOS] up to the answer length, all trained on (LLaDA);
- ``rainbow``: one [EOS], then a cycle of ``pad_cycle`` distinct pad tokens (Rainbow Padding,
  arXiv 2510.03680), so no single token soaks up the probability mass of far positions;
- ``excluded``: as ``eos``, but the [EOS] after the first one are left out of the training loss
  (the first [EOS], which says where the answer stops, stays in it).

Every variant ends an answer at its first end token ([EOS] or any rainbow pad), and ``canonical``
maps every pad to [EOS], so decoded text, the checker's verdict and the metrics do not depend on the
variant.
"""

from __future__ import annotations

import torch

from dlm_lightning.errors import require

PADDINGS = ("eos", "rainbow", "excluded")


def check_padding(padding: str, pad_cycle: int, answer_length: int) -> None:
    require(padding in PADDINGS, "padding", padding, f"one of {', '.join(PADDINGS)}")
    if padding == "rainbow":
        require(isinstance(pad_cycle, int) and 1 <= pad_cycle < answer_length, "pad_cycle", pad_cycle,
                f"must be an integer in [1, {answer_length - 1}]: one [EOS] and the cycle must fit in the "
                f"answer length {answer_length}")


def rainbow_tokens(pad_cycle: int) -> tuple[str, ...]:
    return tuple(f"[PAD{k}]" for k in range(1, pad_cycle + 1))


def pad_answer(words: tuple[str, ...], answer_length: int, eos: str, padding: str,
               pad_cycle: int = 0) -> tuple[str, ...]:
    """``words`` (without end token) followed by the variant's padding up to ``answer_length``."""
    fill = answer_length - len(words) - 1
    require(fill >= 0, "answer_length", answer_length, f"must be > the answer's {len(words)} words")
    if padding == "rainbow":
        cycle = rainbow_tokens(pad_cycle)
        return words + (eos,) + tuple(cycle[k % pad_cycle] for k in range(fill))
    return words + (eos,) * (fill + 1)


def answer_lengths(answers: torch.Tensor, end_ids: tuple[int, ...]) -> torch.Tensor:
    """Position of the first end token of each row of ``answers`` [B, A]; A where there is none."""
    ends = torch.isin(answers, torch.tensor(end_ids, device=answers.device))
    return torch.where(ends.any(dim=1), ends.int().argmax(dim=1), answers.shape[1])


def after_first_end(answers: torch.Tensor, end_ids: tuple[int, ...]) -> torch.Tensor:
    """[B, A] bool: positions strictly after each row's first end token."""
    positions = torch.arange(answers.shape[1], device=answers.device)
    return positions > answer_lengths(answers, end_ids).unsqueeze(1)


def canonical(tokens: torch.Tensor, pad_ids: tuple[int, ...], eos_id: int) -> torch.Tensor:
    """``tokens`` with every rainbow pad replaced by [EOS]."""
    if not pad_ids:
        return tokens
    return torch.where(torch.isin(tokens, torch.tensor(pad_ids, device=tokens.device)), eos_id, tokens)
