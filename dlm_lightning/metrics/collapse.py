"""Outcome metrics of frequency collapse: what decoded answers look like against the data's answers
for the same prompts (names in docs/collapse.md).

- length: an answer's length is the position of its first end token ([EOS] or any pad variant; the
  answer length A when it has none). ``length/mean``, ``length/data_mean``, ``length/mean_diff`` (mean
  of decoded - data, paired by prompt), ``length/bias`` (its absolute value), ``length/tv`` (total
  variation between the two length histograms), ``length/early_stop`` (share of prompts whose decoded
  answer ends before the data's, among prompts whose data answer ends inside the canvas) and
  ``length/no_end`` (decoded answers without an end token); the two length distributions themselves
  as ``length/hist/lFF-LL`` and ``length/data_hist/lFF-LL`` (share of answers per length bin; the
  last bin ends at A, no end).
- profile, per distance bucket ``dFF-LL`` of answer positions (pad variants read as [EOS]):
  ``profile/kl/...`` = KL(decoded law || data law), the data law add-one smoothed over the vocabulary;
  ``profile/top_share/...`` and ``profile/data_top_share/...`` = share of the corpus's ``top_k`` most
  frequent non-special tokens; ``profile/special_share/...`` and ``profile/data_special_share/...`` =
  share of special tokens ([EOS] included).
- diversity of decoded answers cut at their end: ``diversity/distinct_n`` and ``diversity/repeat_n``
  (metrics/diversity.py) for each n in ``ngram_sizes``.

Histograms and counts are summed over DDP ranks; the n-grams behind distinct-n are gathered.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

from dlm_lightning.data.padding import answer_lengths, canonical
from dlm_lightning.errors import require
from dlm_lightning.metrics.diversity import repeated_ngram_counts
from dlm_lightning.metrics.positions import distance_buckets


def top_frequency_ids(token_counts: torch.Tensor, special_ids: tuple[int, ...], k: int) -> tuple[int, ...]:
    """The ``k`` most frequent non-special tokens of the corpus counts (ties: the lower id)."""
    counts = token_counts.double().clone()
    counts[list(special_ids)] = -1.0
    order = sorted(range(counts.numel()), key=lambda v: (-float(counts[v]), v))
    return tuple(v for v in order[:k] if counts[v] > 0)


class CollapseMetrics(Metric):
    full_state_update = False

    def __init__(self, answer_length: int, vocab_size: int, eos_id: int, pad_ids: tuple[int, ...] = (),
                 special_ids: tuple[int, ...] = (), top_ids: tuple[int, ...] = (), num_buckets: int = 4,
                 ngram_sizes: tuple[int, ...] = (2, 3)):
        super().__init__()
        require(all(vocab_size ** n < 2 ** 62 for n in ngram_sizes), "ngram_sizes", list(ngram_sizes),
                f"n-grams are coded as int64: vocab_size ** n must be < 2 ** 62 (vocab_size={vocab_size})")
        self.answer_length, self.vocab_size = answer_length, vocab_size
        self.eos_id, self.pad_ids = eos_id, tuple(pad_ids)
        self.end_ids = (eos_id, *self.pad_ids)
        self.ngram_sizes = tuple(ngram_sizes)
        self.buckets = distance_buckets(answer_length, num_buckets)
        index = torch.zeros(answer_length, dtype=torch.long)
        for k, (first, last) in enumerate(self.buckets):
            index[first:last + 1] = k
        self.register_buffer("bucket_of_distance", index, persistent=False)
        self.register_buffer("is_special", _indicator(vocab_size, (*special_ids, *self.end_ids)), persistent=False)
        self.register_buffer("is_top", _indicator(vocab_size, top_ids), persistent=False)
        zeros = lambda *shape: torch.zeros(*shape, dtype=torch.float64)  # noqa: E731
        for name in ("decoded_lengths", "data_lengths"):
            self.add_state(name, zeros(answer_length + 1), dist_reduce_fx="sum")
        for name in ("pairs", "length_diff", "early_stops", "ended_data"):
            self.add_state(name, zeros(()), dist_reduce_fx="sum")
        for name in ("decoded_counts", "data_counts"):
            self.add_state(name, zeros(len(self.buckets), vocab_size), dist_reduce_fx="sum")
        for name in ("repeats", "ngrams"):
            self.add_state(name, zeros(len(self.ngram_sizes)), dist_reduce_fx="sum")
        for n in self.ngram_sizes:
            self.add_state(f"codes_{n}", [], dist_reduce_fx="cat")

    @classmethod
    def for_data(cls, info, **kwargs) -> "CollapseMetrics":
        """From a DataInfo: its end tokens, special tokens and the 5 most frequent corpus tokens."""
        top = top_frequency_ids(info.token_counts, tuple(info.special_ids), kwargs.pop("top_k", 5))
        return cls(info.answer_length, info.vocab_size, info.eos_id, tuple(info.pad_ids), tuple(info.special_ids),
                   top, **kwargs)

    def update(self, answers: torch.Tensor, data_answers: torch.Tensor) -> None:
        """answers, data_answers: [B, A] decoded and reference ids for the same prompts."""
        require(answers.shape == data_answers.shape, "data_answers", tuple(data_answers.shape),
                f"must have the decoded answers' shape {tuple(answers.shape)}")
        decoded_len = answer_lengths(answers, self.end_ids)
        data_len = answer_lengths(data_answers, self.end_ids)
        bins = self.answer_length + 1
        self.decoded_lengths += torch.bincount(decoded_len, minlength=bins)[:bins].double()
        self.data_lengths += torch.bincount(data_len, minlength=bins)[:bins].double()
        self.pairs += answers.shape[0]
        self.length_diff += (decoded_len - data_len).sum().double()
        ended = data_len < answers.shape[1]
        self.ended_data += ended.sum().double()
        self.early_stops += (ended & (decoded_len < data_len)).sum().double()
        self.decoded_counts += self._bucket_counts(canonical(answers, self.pad_ids, self.eos_id))
        self.data_counts += self._bucket_counts(canonical(data_answers, self.pad_ids, self.eos_id))
        rows = [row[:n] for row, n in zip(answers.tolist(), decoded_len.tolist())]
        for k, n in enumerate(self.ngram_sizes):
            counted = [repeated_ngram_counts(row, n) for row in rows]
            self.repeats[k] += sum(r for r, _ in counted)
            self.ngrams[k] += sum(t for _, t in counted)
            getattr(self, f"codes_{n}").append(self._codes(rows, n).to(self.repeats.device))

    def _bucket_counts(self, answers: torch.Tensor) -> torch.Tensor:
        bucket = self.bucket_of_distance[: answers.shape[1]].expand_as(answers)
        flat = (bucket * self.vocab_size + answers).flatten()
        return torch.bincount(flat, minlength=len(self.buckets) * self.vocab_size).double().view(len(self.buckets), -1)

    def _codes(self, rows: list[list[int]], n: int) -> torch.Tensor:
        """Every n-gram of every row as one int64 (base vocab_size)."""
        codes = [sum(t * self.vocab_size ** (n - 1 - j) for j, t in enumerate(row[i: i + n]))
                 for row in rows for i in range(len(row) - n + 1)]
        return torch.tensor(codes, dtype=torch.long)

    def compute(self) -> dict[str, torch.Tensor]:
        pairs = self.pairs.clamp_min(1)
        positions = torch.arange(self.answer_length + 1, dtype=torch.float64, device=self.pairs.device)
        decoded_mean = (self.decoded_lengths * positions).sum() / pairs
        data_mean = (self.data_lengths * positions).sum() / pairs
        mean_diff = self.length_diff / pairs
        out = {
            "length/mean": decoded_mean,
            "length/data_mean": data_mean,
            "length/mean_diff": mean_diff,
            "length/bias": mean_diff.abs(),
            "length/tv": 0.5 * (self.decoded_lengths / pairs - self.data_lengths / pairs).abs().sum(),
            "length/early_stop": self.early_stops / self.ended_data.clamp_min(1),
            "length/no_end": self.decoded_lengths[-1] / pairs,
        }
        for first, last in distance_buckets(self.answer_length + 1, 8):
            name = f"l{first:02d}-{last:02d}"
            out[f"length/hist/{name}"] = self.decoded_lengths[first:last + 1].sum() / pairs
            out[f"length/data_hist/{name}"] = self.data_lengths[first:last + 1].sum() / pairs
        for k, (first, last) in enumerate(self.buckets):
            name = f"d{first:02d}-{last:02d}"
            decoded, data = self.decoded_counts[k], self.data_counts[k]
            p = decoded / decoded.sum().clamp_min(1)
            q = (data + 1.0) / (data.sum() + self.vocab_size)
            support = p > 0
            out[f"profile/kl/{name}"] = (p[support] * (p[support] / q[support]).log()).sum()
            out[f"profile/top_share/{name}"] = (p * self.is_top).sum()
            out[f"profile/special_share/{name}"] = (p * self.is_special).sum()
            data_p = data / data.sum().clamp_min(1)
            out[f"profile/data_top_share/{name}"] = (data_p * self.is_top).sum()
            out[f"profile/data_special_share/{name}"] = (data_p * self.is_special).sum()
        for k, n in enumerate(self.ngram_sizes):
            codes = getattr(self, f"codes_{n}")
            codes = torch.cat(codes) if isinstance(codes, list) and codes else codes
            total = self.ngrams[k]
            distinct = codes.unique().numel() if isinstance(codes, torch.Tensor) else 0
            out[f"diversity/distinct_{n}"] = torch.tensor(distinct, dtype=torch.float64) / total.clamp_min(1)
            out[f"diversity/repeat_{n}"] = self.repeats[k] / total.clamp_min(1)
        return out


def _indicator(size: int, ids) -> torch.Tensor:
    values = torch.zeros(size, dtype=torch.float64)
    values[list(ids)] = 1.0
    return values
