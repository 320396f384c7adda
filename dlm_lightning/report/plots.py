"""Comparison plots of a sweep's grid cells (matplotlib, no GUI backend), each mean +- std over seeds.

- ``<metric>.png``: one bar per grid cell (e.g. NELBO per schedule x decoder), seeds as dots;
- ``<metric>_vs_<axis>.png``: the metric against a numeric grid axis (e.g. validity versus
  ``decoder.tokens_per_step``), one line per combination of the other axes;
- ``curve_<family>.png``: metric families indexed by a number inside their name (the per-position
  ``val/position/nelbo/d00-04``, ...), one line per grid cell.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from matplotlib.figure import Figure

from dlm_lightning.report.grid import Cell, Stat, is_number

# a name component that carries a number: d00-04 (a distance bucket), k=2, pos7, 16
_INDEXED = re.compile(r"^[A-Za-z_]*=?(\d+)(?:-\d+)?$")


def cell_label(cell: Cell, axes: list[str]) -> str:
    return ", ".join(f"{a}={v}" for a, v in zip(axes, cell.key)) or "all jobs"


def bar_plots(out_dir: Path, table: list[Cell], axes: list[str], metrics: list[str]) -> list[Path]:
    paths = []
    labels = [cell_label(c, axes) for c in table]
    for metric in metrics:
        stats = [c.stats[metric] for c in table]
        if all(s.n == 0 for s in stats):
            continue
        fig = Figure(figsize=(7, 0.45 * len(table) + 1.4))
        ax = fig.subplots()
        rows = range(len(table))
        ax.barh(rows, [s.mean for s in stats], xerr=[_err(s) for s in stats], color="tab:blue", alpha=0.6, capsize=3)
        for row, cell in zip(rows, table):
            seeds = [float(v) for v in (job.metrics.get(metric) for job in cell.jobs) if is_number(v)]
            ax.plot(seeds, [row] * len(seeds), "k.", markersize=4)
        ax.set_yticks(list(rows), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(f"{metric} (mean ± std over seeds; dots: seeds)")
        paths.append(_save(fig, out_dir / f"{_slug(metric)}.png"))
    return paths


def axis_plots(out_dir: Path, table: list[Cell], axes: list[str], metrics: list[str]) -> list[Path]:
    paths = []
    for i, axis in enumerate(axes):
        if not all(isinstance(c.key[i], (int, float)) and not isinstance(c.key[i], bool) for c in table):
            continue
        others = [a for a in axes if a != axis]
        for metric in metrics:
            lines: dict[tuple, list[tuple[float, Stat]]] = {}
            for cell in table:
                rest = tuple(v for j, v in enumerate(cell.key) if j != i)
                lines.setdefault(rest, []).append((cell.key[i], cell.stats[metric]))
            fig = Figure(figsize=(6, 4))
            ax = fig.subplots()
            for rest, points in lines.items():
                points.sort(key=lambda p: p[0])
                label = ", ".join(f"{a}={v}" for a, v in zip(others, rest)) or metric
                ax.errorbar([x for x, _ in points], [s.mean for _, s in points], yerr=[_err(s) for _, s in points],
                            marker="o", capsize=3, label=label)
            ax.set_xlabel(axis)
            ax.set_ylabel(metric)
            ax.legend(fontsize=7)
            paths.append(_save(fig, out_dir / f"{_slug(metric)}_vs_{_slug(axis)}.png"))
    return paths


def indexed_families(metrics: list[str]) -> dict[str, list[tuple[int, str, str]]]:
    """family name (the indexed part replaced by ``*``) -> sorted [(number, indexed part, metric)],
    for families of two or more metrics."""
    families: dict[str, list[tuple[int, str, str]]] = {}
    for metric in metrics:
        parts = metric.split("/")
        hits = [i for i, part in enumerate(parts) if _INDEXED.match(part)]
        if len(hits) == 1:
            i = hits[0]
            family = "/".join(parts[:i] + ["*"] + parts[i + 1:])
            families.setdefault(family, []).append((int(_INDEXED.match(parts[i]).group(1)), parts[i], metric))
    return {f: sorted(members) for f, members in families.items() if len(members) > 1}


def curve_plots(out_dir: Path, table: list[Cell], axes: list[str], metrics: list[str]) -> list[Path]:
    paths = []
    for family, members in indexed_families(metrics).items():
        fig = Figure(figsize=(7, 4))
        ax = fig.subplots()
        xs = [x for x, _, _ in members]
        for cell in table:
            stats = [cell.stats[m] for _, _, m in members]
            ax.errorbar(xs, [s.mean for s in stats], yerr=[_err(s) for s in stats], marker="o", capsize=2,
                        label=cell_label(cell, axes))
        ax.set_xticks(xs, [part for _, part, _ in members], rotation=45, fontsize=8)
        ax.set_ylabel(family)
        ax.legend(fontsize=7)
        paths.append(_save(fig, out_dir / f"curve_{_slug(family)}.png"))
    return paths


def _err(stat: Stat) -> float:
    return 0.0 if math.isnan(stat.std) else stat.std


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
