import math

import pytest
import torch

from dlm_lightning.metrics.collapse import CollapseMetrics, top_frequency_ids

EOS, PAD1, PAD2, SPECIAL = 0, 5, 6, 7  # vocabulary of 8: 0 = [EOS], 1-4 words, 5-6 rainbow pads, 7 special


def metric(**kwargs):
    return CollapseMetrics(answer_length=4, vocab_size=8, eos_id=EOS, pad_ids=(PAD1, PAD2),
                           special_ids=(SPECIAL,), top_ids=(1,), num_buckets=2, **kwargs)


def hand_made():
    decoded = torch.tensor([[1, 0, 0, 0],      # length 1
                            [1, 2, 3, 4],      # no end: length 4
                            [2, 2, 5, 6]])     # ends at a rainbow pad: length 2
    data = torch.tensor([[1, 2, 0, 0],         # length 2 (decoded ends early)
                         [1, 2, 3, 0],         # length 3 (decoded longer)
                         [2, 2, 0, 5]])        # length 2
    return decoded, data


def test_length_metrics_exact():
    m = metric()
    m.update(*hand_made())
    out = m.compute()
    assert float(out["length/mean"]) == pytest.approx(7 / 3)
    assert float(out["length/data_mean"]) == pytest.approx(7 / 3)
    # paired differences -1, +1, 0
    assert float(out["length/mean_diff"]) == pytest.approx(0.0)
    assert float(out["length/bias"]) == pytest.approx(0.0)
    # decoded lengths {1, 4, 2}, data {2, 3, 2}: histograms differ by 1/3 at 1, 3, 4 and 1/3 at 2
    assert float(out["length/tv"]) == pytest.approx(0.5 * 4 / 3)
    assert float(out["length/early_stop"]) == pytest.approx(1 / 3)
    assert float(out["length/no_end"]) == pytest.approx(1 / 3)
    # lengths 0..4 in (up to) 8 bins: one length per bin here
    assert [float(out[f"length/hist/l{n:02d}-{n:02d}"]) for n in range(5)] == pytest.approx([0, 1 / 3, 1 / 3, 0, 1 / 3])
    assert [float(out[f"length/data_hist/l{n:02d}-{n:02d}"]) for n in range(5)] == pytest.approx([0, 0, 2 / 3, 1 / 3, 0])


def test_profile_exact_per_bucket():
    m = metric()
    m.update(*hand_made())
    out = m.compute()
    # bucket d00-01: decoded tokens 1,0,1,2,2,2 -> p = {0: 1/6, 1: 2/6, 2: 3/6}
    # data tokens 1,2,1,2,2,2 -> counts {1: 2, 2: 4}; add-one over 8 ids: q = (c + 1) / 14
    p = {0: 1 / 6, 1: 2 / 6, 2: 3 / 6}
    q = {0: 1 / 14, 1: 3 / 14, 2: 5 / 14}
    assert float(out["profile/kl/d00-01"]) == pytest.approx(sum(p[v] * math.log(p[v] / q[v]) for v in p))
    assert float(out["profile/top_share/d00-01"]) == pytest.approx(2 / 6)
    assert float(out["profile/data_top_share/d00-01"]) == pytest.approx(2 / 6)
    assert float(out["profile/special_share/d00-01"]) == pytest.approx(1 / 6)
    assert float(out["profile/data_special_share/d00-01"]) == pytest.approx(0.0)
    # bucket d02-03: decoded 0,0,3,4,5->0,6->0 : EOS 4/6 (pads read as [EOS]); data 0,0,3,0,0,5->0: 5/6
    assert float(out["profile/special_share/d02-03"]) == pytest.approx(4 / 6)
    assert float(out["profile/data_special_share/d02-03"]) == pytest.approx(5 / 6)


def test_diversity_on_answers_cut_at_their_end():
    m = metric()
    m.update(*hand_made())
    out = m.compute()
    # cut answers: [1], [1, 2, 3, 4], [2, 2]: bigrams (1,2) (2,3) (3,4) (2,2), all distinct, no repeats
    assert float(out["diversity/distinct_2"]) == pytest.approx(1.0)
    assert float(out["diversity/repeat_2"]) == pytest.approx(0.0)
    assert float(out["diversity/distinct_3"]) == pytest.approx(1.0)


def test_updates_accumulate_like_one_batch():
    decoded, data = hand_made()
    whole, split = metric(), metric()
    whole.update(decoded, data)
    split.update(decoded[:1], data[:1])
    split.update(decoded[1:], data[1:])
    a, b = whole.compute(), split.compute()
    assert a.keys() == b.keys()
    for key in a:
        assert float(a[key]) == pytest.approx(float(b[key])), key


def test_repeats_and_cross_sample_duplicates():
    m = metric()
    same = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 0]])
    m.update(same, same)
    out = m.compute()
    # each answer [1, 1, 1]: bigrams (1,1) (1,1) -> one repeat of two; over both answers 1 distinct of 4
    assert float(out["diversity/repeat_2"]) == pytest.approx(0.5)
    assert float(out["diversity/distinct_2"]) == pytest.approx(0.25)
    assert float(out["length/tv"]) == 0.0 and float(out["profile/kl/d00-01"]) > 0  # smoothing: KL > 0


def test_top_frequency_ids_skip_special_tokens():
    counts = torch.tensor([100.0, 5.0, 9.0, 9.0, 0.0])
    assert top_frequency_ids(counts, (0,), 2) == (2, 3)
    assert top_frequency_ids(counts, (0,), 10) == (2, 3, 1)


def test_mismatched_shapes_name_the_argument():
    with pytest.raises(Exception, match="data_answers"):
        metric().update(torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long))
