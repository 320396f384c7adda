"""The report of a sweep directory: results.csv, results.md, comparison plots and TensorBoard hparams."""

from __future__ import annotations

from pathlib import Path

from dlm_lightning.report.grid import cells, grid_axes, numeric_metrics
from dlm_lightning.report.hparams import write_hparams
from dlm_lightning.report.jobs import collect_jobs
from dlm_lightning.report.plots import axis_plots, bar_plots, curve_plots
from dlm_lightning.report.tables import write_csv, write_markdown

# The columns of results.md (those present); results.csv has every metric.
# Validity never stands alone: the length-bias columns of frequency collapse sit beside it.
TABLE_METRICS = ("val/nelbo", "val/bpt", "sample/validity", "sample/length/bias", "sample/length/tv",
                 "sample/length/early_stop", "sample/diversity/distinct_2", "sample/unigram_entropy",
                 "sample/nfe", "sample/tokens_per_s", "seconds")
PLOTTED_METRICS = ("val/nelbo", "sample/validity", "sample/length/bias", "sample/length/tv",
                   "sample/unigram_entropy")


def write_sweep_report(sweep_dir: Path, seed_key: str = "seed") -> Path:
    """Writes the report files into ``sweep_dir`` and returns the path of results.md."""
    sweep_dir = Path(sweep_dir)
    jobs = collect_jobs(sweep_dir)
    axes = grid_axes(jobs, seed_key)
    available = numeric_metrics(jobs)
    table = cells(jobs, axes, available)
    shown = [m for m in TABLE_METRICS if m in available]
    plotted = [m for m in PLOTTED_METRICS if m in available]
    plots = (bar_plots(sweep_dir, table, axes, plotted) + axis_plots(sweep_dir, table, axes, plotted)
             + curve_plots(sweep_dir, table, axes, available))
    write_csv(sweep_dir / "results.csv", jobs)
    write_markdown(sweep_dir / "results.md", sweep_dir, jobs, table, axes, shown, seed_key, plots)
    write_hparams(sweep_dir, jobs, [*axes, seed_key], available)
    return sweep_dir / "results.md"
