"""The grid of a sweep: which override keys vary, and mean +- std over seeds in each grid cell."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from dlm_lightning.report.jobs import OK, Job

# Whether a smaller or a larger value is better, by the metric's last name component; metrics not
# listed (entropy, NFE, ...) are descriptive and never marked best.
DIRECTIONS = {"nelbo": min, "bpt": min, "ppl": min, "seconds": min, "validity": max, "tokens_per_s": max,
              "bias": min, "tv": min, "early_stop": min}


@dataclass
class Stat:
    mean: float
    std: float  # sample standard deviation over seeds; nan with one seed
    n: int


@dataclass
class Cell:
    key: tuple  # the values of the grid axes, in axis order
    jobs: list[Job]
    stats: dict[str, Stat]


def grid_axes(jobs: list[Job], seed_key: str) -> list[str]:
    """Override keys whose value differs between jobs, except the seed; in first-seen order."""
    keys = list(dict.fromkeys(k for job in jobs for k in job.overrides))
    return [k for k in keys if k != seed_key and len({repr(job.overrides.get(k)) for job in jobs}) > 1]


def numeric_metrics(jobs: list[Job]) -> list[str]:
    keys = dict.fromkeys(k for job in jobs if job.status == OK for k, v in job.metrics.items() if is_number(v))
    return sorted(keys)


def cells(jobs: list[Job], axes: list[str], metrics: list[str]) -> list[Cell]:
    """One cell per combination of axis values among the finished jobs, in the order first seen."""
    groups: dict[tuple, list[Job]] = {}
    for job in jobs:
        if job.status == OK:
            groups.setdefault(tuple(job.overrides.get(a) for a in axes), []).append(job)
    return [Cell(key, members, {m: stat_of([j.metrics.get(m) for j in members]) for m in metrics})
            for key, members in groups.items()]


def best_cells(table: list[Cell], metric: str) -> set[tuple]:
    choose = DIRECTIONS.get(metric.rsplit("/", 1)[-1])
    means = {c.key: c.stats[metric].mean for c in table if not math.isnan(c.stats[metric].mean)}
    if choose is None or len(set(means.values())) < 2:  # nothing to choose between
        return set()
    best = choose(means.values())
    return {key for key, mean in means.items() if mean == best}


def stat_of(values: list) -> Stat:
    """Mean and sample std of the finite numbers among ``values`` (others are skipped)."""
    numbers = [float(v) for v in values if is_number(v)]
    if not numbers:
        return Stat(math.nan, math.nan, 0)
    std = statistics.stdev(numbers) if len(numbers) > 1 else math.nan
    return Stat(statistics.fmean(numbers), std, len(numbers))


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
