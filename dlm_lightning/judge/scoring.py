"""Generative perplexity (and MAUVE) of decoded answers under a judge."""

from __future__ import annotations

import math

import torch

from dlm_lightning.judge.base import Judge


def sample_texts(tokenizer, eos_id: int, answers: list[list[int]]) -> tuple[list[str], list[bool]]:
    """Each answer cut before its first EOS and decoded without special tokens; whether it ended there."""
    texts, ended = [], []
    for ids in answers:
        end = ids.index(eos_id) if eos_id in ids else len(ids)
        texts.append(tokenizer.decode(ids[:end], skip_special_tokens=True))
        ended.append(end < len(ids))
    return texts, ended


def windows(ids: list[int], start_id: int | None, context: int) -> list[list[int]]:
    """Consecutive pieces of [start] + ids of at most context + 1 tokens, overlapping by one: each
    piece's inputs are all its tokens but the last, its targets all but the first."""
    stream = ([start_id] if start_id is not None else []) + list(ids)
    return [stream[i: i + context + 1] for i in range(0, max(len(stream) - 1, 0), context)]


@torch.no_grad()
def token_nll(judge: Judge, token_lists: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed NLL (nats, float64) and scored-token count per sample, [N] each."""
    pieces = [(n, w) for n, ids in enumerate(token_lists) for w in windows(ids, judge.start_id, judge.context)]
    nll = torch.zeros(len(token_lists), dtype=torch.float64)
    count = torch.zeros(len(token_lists), dtype=torch.float64)
    for b in range(0, len(pieces), judge.batch_size):
        batch = pieces[b: b + judge.batch_size]
        width = max(len(w) for _, w in batch) - 1
        inputs = torch.zeros(len(batch), width, dtype=torch.long)
        targets = torch.zeros(len(batch), width, dtype=torch.long)
        real = torch.zeros(len(batch), width, dtype=torch.bool)
        for row, (_, w) in enumerate(batch):  # right padding: a causal model's real rows never see it
            inputs[row, : len(w) - 1] = torch.tensor(w[:-1])
            targets[row, : len(w) - 1] = torch.tensor(w[1:])
            real[row, : len(w) - 1] = True
        log_probs = judge.log_probs(inputs).double()
        piece_nll = (-log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1) * real).sum(dim=1)
        owners = torch.tensor([n for n, _ in batch])
        nll.index_add_(0, owners, piece_nll)
        count.index_add_(0, owners, real.sum(dim=1).double())
    return nll, count


def generative_perplexity(judge: Judge, token_lists: list[list[int]]) -> dict[str, float]:
    """exp(total NLL / total scored tokens) over all samples (token-weighted, as MDLM and Duo report)."""
    nll, count = token_nll(judge, token_lists)
    total = float(count.sum())
    mean = float(nll.sum()) / total if total else math.nan
    return {"gen_nll": mean, "gen_ppl": math.exp(mean) if total else math.nan, "gen_tokens": total}


@torch.no_grad()
def judge_features(judge: Judge, token_lists: list[list[int]]) -> torch.Tensor:
    """[N, D] features of each sample (truncated to the judge's context)."""
    out = []
    for b in range(0, len(token_lists), judge.batch_size):
        batch = [(([judge.start_id] if judge.start_id is not None else []) + ids)[: judge.context]
                 for ids in token_lists[b: b + judge.batch_size]]
        lengths = torch.tensor([len(ids) for ids in batch])
        inputs = torch.zeros(len(batch), int(lengths.max()), dtype=torch.long)
        for row, ids in enumerate(batch):
            inputs[row, : len(ids)] = torch.tensor(ids)
        out.append(judge.features(inputs, lengths).float())
    return torch.cat(out)


def mauve_score(judge: Judge, samples: list[list[int]], references: list[list[int]], seed: int = 0) -> float:
    """MAUVE (Pillutla et al. 2021) between samples and held-out references, on the judge's features."""
    import mauve

    result = mauve.compute_mauve(p_features=judge_features(judge, references).numpy(),
                                 q_features=judge_features(judge, samples).numpy(), seed=seed, verbose=False)
    return float(result.mauve)


def score_answers(judge: Judge, tokenizer, eos_id: int, answers: list[list[int]],
                  references: list[list[int]] | None = None) -> dict[str, float]:
    """gen_ppl, gen_nll, gen_tokens (and mauve when the judge asks for it) of suite-token answers."""
    texts, ended = sample_texts(tokenizer, eos_id, answers)
    scores = generative_perplexity(judge, judge.encode(texts, ended))
    if judge.mauve and references is not None:
        ref_texts, ref_ended = sample_texts(tokenizer, eos_id, references)
        scores["mauve"] = mauve_score(judge, judge.encode(texts, ended), judge.encode(ref_texts, ref_ended))
    return scores
