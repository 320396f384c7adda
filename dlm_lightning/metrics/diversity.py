"""Diversity of generated token sequences: distinct-n and the repeated-n-gram rate.

Both take plain lists of token ids (each already cut at its end of answer) and pool over the lists:

- ``distinct_n``: distinct n-grams over all lists / all n-grams (Li et al. 2016, corpus-level);
  1 when every n-gram is new, small when samples repeat each other or themselves.
- ``repeated_ngram_rate``: the share of n-grams that repeat an earlier n-gram of the *same* list;
  0 without loops, large for "a a a a" degeneration.

Lists shorter than n contribute no n-grams; with no n-gram at all both return 0.0.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence


def ngrams(tokens: Sequence[int], n: int) -> list[tuple[int, ...]]:
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return [tuple(tokens[i: i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(token_lists: Iterable[Sequence[int]], n: int) -> float:
    seen: set[tuple[int, ...]] = set()
    total = 0
    for tokens in token_lists:
        grams = ngrams(tokens, n)
        seen.update(grams)
        total += len(grams)
    return len(seen) / total if total else 0.0


def repeated_ngram_counts(tokens: Sequence[int], n: int) -> tuple[int, int]:
    """(n-grams that repeat an earlier one of this list, n-grams of this list)."""
    grams = ngrams(tokens, n)
    return len(grams) - len(Counter(grams)), len(grams)


def repeated_ngram_rate(token_lists: Iterable[Sequence[int]], n: int) -> float:
    repeats = total = 0
    for tokens in token_lists:
        r, t = repeated_ngram_counts(tokens, n)
        repeats, total = repeats + r, total + t
    return repeats / total if total else 0.0
