"""Per-position diagnostics: distance buckets, exact sums on a small case, and the figure."""

from __future__ import annotations

import torch

from dlm_lightning.metrics.positions import PositionDiagnostics, distance_buckets, position_figure


def test_buckets_cover_every_distance_once():
    assert distance_buckets(40, 8) == [(5 * k, 5 * k + 4) for k in range(8)]
    for length in (1, 3, 10, 41):
        buckets = distance_buckets(length, 8)
        assert len(buckets) == min(8, length)
        covered = [d for first, last in buckets for d in range(first, last + 1)]
        assert covered == list(range(length))


def test_nelbo_and_accuracy_per_bucket():
    metric = PositionDiagnostics(prompt_length=2, answer_length=4, num_buckets=2)
    x0 = torch.tensor([[9, 9, 0, 1, 2, 3], [9, 9, 3, 2, 1, 0]])
    terms = torch.tensor([[5.0, 5.0, 1, 2, 3, 4], [5.0, 5.0, 5, 6, 7, 8]])  # prompt terms are ignored
    masked = torch.tensor([[False, False, True, True, False, True], [False, False, True, False, True, True]])
    predicted = torch.tensor([[0, 0, 0, 3, 0, 3], [0, 0, 1, 2, 1, 0]])  # argmax per position
    log_probs = torch.nn.functional.one_hot(predicted, 10).float().log()
    metric.update(terms, masked, log_probs, x0)
    values = metric.compute()
    assert float(values["nelbo/d00-01"]) == (1 + 2 + 5 + 6) / 4
    assert float(values["nelbo/d02-03"]) == (3 + 4 + 7 + 8) / 4
    # masked in bucket 0: (0,2) right, (0,3) wrong, (1,2) wrong; bucket 1: (0,5) right, (1,4) right, (1,5) right
    assert float(values["accuracy/d00-01"]) == 1 / 3
    assert float(values["accuracy/d02-03"]) == 1.0
    figure = position_figure(values)
    assert len(figure.axes) == 2 and len(figure.axes[0].lines[0].get_xdata()) == 2
