"""results.csv (one row per job) and results.md (mean +- std per grid cell, best marked, failures listed)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from dlm_lightning.report.grid import Cell, Stat, best_cells
from dlm_lightning.report.jobs import OK, Job


def write_csv(path: Path, jobs: list[Job]) -> None:
    override_keys = list(dict.fromkeys(k for job in jobs for k in job.overrides))
    metric_keys = sorted(dict.fromkeys(k for job in jobs for k in job.metrics))
    columns = ["job", "status", *override_keys, *(m for m in metric_keys if m not in override_keys), "error"]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for job in jobs:
            writer.writerow({"job": job.name, "status": job.status, "error": job.error,
                             **job.metrics, **job.overrides})


def write_markdown(path: Path, sweep_dir: Path, jobs: list[Job], table: list[Cell], axes: list[str],
                   metrics: list[str], seed_key: str, plots: list[Path]) -> None:
    done = sum(job.status == OK for job in jobs)
    lines = [f"# Sweep results: `{sweep_dir}`", "",
             f"{len(jobs)} jobs: {done} finished, {len(jobs) - done} failed or unfinished. "
             f"Each cell is mean ± sample std over `{seed_key}` (n = number of finished seeds); "
             f"**bold** is the best mean of a column where a direction is defined.", ""]
    best = {m: best_cells(table, m) for m in metrics}
    header = [*axes, "n", *metrics]
    lines += ["| " + " | ".join(f"`{h}`" if h in axes else h for h in header) + " |",
              "|" + "---|" * len(header)]
    for cell in table:
        values = [_format_value(v) for v in cell.key]
        values.append(str(len(cell.jobs)))
        for metric in metrics:
            text = _format_stat(cell.stats[metric])
            values.append(f"**{text}**" if cell.key in best[metric] else text)
        lines.append("| " + " | ".join(values) + " |")
    failed = [job for job in jobs if job.status != OK]
    lines += ["", f"## Failed or unfinished jobs ({len(failed)})", ""]
    if failed:
        lines += ["| job | status | error |", "|---|---|---|"]
        lines += [f"| `{_job_label(job, [*axes, seed_key])}` | {job.status} | {_short(job.error)} |" for job in failed]
    else:
        lines.append("none")
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    path.write_text("\n".join(lines) + "\n")


def _job_label(job: Job, keys: list[str]) -> str:
    """The job's grid values (its directory, named by every override, is in results.csv)."""
    return ", ".join(f"{k}={job.overrides[k]}" for k in keys if k in job.overrides) or job.name


def _short(error: str, limit: int = 200) -> str:
    error = error.replace("|", "/")
    return error if len(error) <= limit else error[: limit - 3] + "..."


def _format_value(value) -> str:
    return "—" if value is None else str(value)


def _format_stat(stat: Stat) -> str:
    if stat.n == 0:
        return "—"
    if math.isnan(stat.std):
        return f"{stat.mean:.4g}"
    return f"{stat.mean:.4g} ± {stat.std:.2g}"
