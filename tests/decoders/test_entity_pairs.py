"""Committed-then-invalid multi-token entities: mixed city pairs committed in the same step."""

import torch

from dlm_lightning.data import corpus
from dlm_lightning.metrics.entities import committed_mixed_pairs, mixed_pair_codes

VOCAB = {word: i for i, word in enumerate(corpus.VOCABULARY)}
V = len(VOCAB)
CITIES = tuple(c for c in corpus.CITIES if len(c) > 1)


def ids(text: str) -> list[int]:
    return [VOCAB[w] for w in text.split()]


def test_mixed_pairs_are_first_words_times_second_words_minus_the_cities():
    codes = mixed_pair_codes(CITIES, VOCAB, V)
    assert len(codes) == 3 * 5 - 5  # {new, san, los} x {york, delhi, francisco, diego, angeles} - 5 cities
    assert VOCAB["new"] * V + VOCAB["diego"] in codes.tolist()
    assert VOCAB["new"] * V + VOCAB["york"] not in codes.tolist()
    assert len(mixed_pair_codes((), VOCAB, V)) == 0


def test_counts_only_mixed_pairs_committed_in_one_step():
    codes = mixed_pair_codes(CITIES, VOCAB, V)
    answers = torch.tensor([
        ids("he visited new diego . she visited san york ."),
        ids("he visited new diego . she visited san york ."),
        ids("he visited new york . she visited los angeles ."),
        ids("he visited new diego . she visited san york ."),
    ])
    steps = torch.tensor([
        [0, 1, 2, 2, 3, 4, 5, 6, 6, 7],   # both pairs in one step each
        [0, 1, 2, 3, 3, 4, 5, 6, 7, 7],   # neither: each pair spans two steps
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],   # all at once, but both cities are valid
        [0, 1, -1, -1, 3, 4, 5, 6, 6, 7],  # uncommitted (-1) positions never count
    ])
    assert committed_mixed_pairs(answers, steps, codes, V).tolist() == [2, 0, 0, 1]
