import pytest

from dlm_lightning.metrics.diversity import distinct_n, ngrams, repeated_ngram_rate


def test_distinct_n_pools_over_lists():
    lists = [[1, 2, 3, 1, 2], [1, 2, 4]]
    # bigrams: (1,2) (2,3) (3,1) (1,2) | (1,2) (2,4): 6 in all, 4 distinct
    assert distinct_n(lists, 2) == pytest.approx(4 / 6)
    assert distinct_n(lists, 1) == pytest.approx(4 / 8)


def test_repeated_ngram_rate_counts_repeats_within_a_list_only():
    lists = [[1, 2, 3, 1, 2], [1, 2, 4]]
    # only (1,2) repeats inside the first list; the second list's (1,2) is not a repeat
    assert repeated_ngram_rate(lists, 2) == pytest.approx(1 / 6)
    assert repeated_ngram_rate([[7, 7, 7, 7]], 1) == pytest.approx(3 / 4)
    assert repeated_ngram_rate([[7, 7, 7, 7]], 2) == pytest.approx(2 / 3)


def test_short_or_empty_lists_give_zero():
    assert distinct_n([[1], []], 2) == 0.0
    assert repeated_ngram_rate([], 3) == 0.0
    assert ngrams([1, 2], 3) == []
    with pytest.raises(ValueError, match="n must be >= 1"):
        ngrams([1], 0)
