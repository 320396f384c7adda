"""Side by side: several saved probes (their probe.json) as one Markdown table and one figure."""

from __future__ import annotations

import json
from pathlib import Path

from dlm_lightning.errors import UserError
from dlm_lightning.probe.aggregate import LABELS
from dlm_lightning.probe.writers import JSON_FILE

COMPARE_MD, COMPARE_PNG = "compare.md", "compare.png"
PANELS = ("kl", "kl_content", "p_eos", "entropy", "top1_prob", "rank_content")


def load_reports(directories: list[str]) -> list[tuple[str, dict]]:
    reports = []
    for directory in directories:
        path = Path(directory) / JSON_FILE
        if not path.is_file():
            raise UserError(f"compare: {directory} holds no {JSON_FILE}; give directories written by experiments.probe")
        reports.append((str(directory), json.loads(path.read_text())))
    return reports


def _label(report: dict) -> str:
    return report.get("label") or report["model"]


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.3g}"


def compare_markdown(reports: list[tuple[str, dict]]) -> str:
    lines = ["# Probes side by side", ""]
    for directory, report in reports:
        lines.append(f"- `{_label(report)}`: {directory} ({report['n_prompts']} prompts, {report['n_masks']} masks)")
    lines += ["", "Mean per quarter of the mask positions (Q1 nearest the prompt); Spearman: correlation of the "
                  "per-position mean with the distance.", "",
              "| metric | probe | Q1 | Q2 | Q3 | Q4 | Q4 - Q1 | Spearman |", "|---|---|---|---|---|---|---|---|"]
    names = [m for m in LABELS if any(m in r["quarters"] for _, r in reports)]
    for name in names:
        for _, report in reports:
            values = report["quarters"].get(name)
            if not values:
                continue
            delta = None if None in (values[0], values[-1]) else values[-1] - values[0]
            lines.append(f"| {LABELS[name]} | {_label(report)} | " + " | ".join(_fmt(v) for v in values)
                         + f" | {_fmt(delta)} | {_fmt(report['spearman_vs_distance'].get(name))} |")
    return "\n".join(lines) + "\n"


def compare_figure(reports: list[tuple[str, dict]]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5))
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.08, top=0.9, hspace=0.35, wspace=0.25)
    for ax, name in zip(axes.flat, PANELS):
        for _, report in reports:
            if name not in report["per_position"]:
                continue
            values = report["per_position"][name]
            statistic = "median" if name.startswith("rank") else "mean"
            x = np.arange(1, report["n_masks"] + 1)
            ax.plot(x, values[statistic], label=_label(report))
            if statistic == "mean":
                y, std = np.asarray(values["mean"]), np.asarray(values["std"])
                ax.fill_between(x, y - std, y + std, alpha=0.15)
        ax.set_title(LABELS[name] + (" (median)" if name.startswith("rank") else " (mean ± std)"), fontsize=9)
        ax.set_xlabel("distance from the prompt (mask position)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Frequency-collapse probe, side by side", fontsize=11)
    return fig


def write_comparison(directories: list[str], labels: list[str] | None, out_dir: Path) -> None:
    import matplotlib.pyplot as plt

    reports = load_reports(directories)
    if labels:
        if len(labels) != len(reports):
            raise UserError(f"compare_labels has {len(labels)} entries for {len(reports)} probes")
        for (_, report), label in zip(reports, labels):
            report["label"] = label
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / COMPARE_MD).write_text(compare_markdown(reports))
    figure = compare_figure(reports)
    figure.savefig(out_dir / COMPARE_PNG, dpi=110)
    plt.close(figure)
