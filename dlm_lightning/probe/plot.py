"""The probe figure: metrics versus distance from the prompt, and heatmaps of the top-1 tokens."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dlm_lightning.probe.aggregate import LABELS  # noqa: E402

PANELS = (("entropy", "top1_prob"), ("p_eos", "p_special"), ("kl", "kl_content"), ("rank", "rank_content"))


def _line(ax, report: dict, name: str, statistic: str = "mean") -> None:
    values = report["per_position"][name]
    x = np.arange(1, report["n_masks"] + 1)
    y = np.asarray(values[statistic])
    ax.plot(x, y, label=f"{LABELS[name]} ({statistic})")
    if statistic == "mean":
        std = np.asarray(values["std"])
        ax.fill_between(x, y - std, y + std, alpha=0.2)


def _heatmap(fig, ax, shares: dict, title: str) -> None:
    matrix = np.asarray(shares["shares"])
    image = ax.imshow(matrix, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest",
                      extent=(0.5, matrix.shape[1] + 0.5, matrix.shape[0] - 0.5, -0.5))
    ax.set_yticks(range(len(shares["tokens"])), [repr(t) if not t.isprintable() else t for t in shares["tokens"]],
                  fontsize=7)
    ax.set_xlabel("distance from the prompt (mask position)")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="share of prompts")


def probe_figure(report: dict):
    # fixed margins: constrained layout costs more than the whole probe of a small model
    fig, axes = plt.subplots(3, 2, figsize=(12, 11))
    fig.subplots_adjust(left=0.08, right=0.97, bottom=0.05, top=0.92, hspace=0.3, wspace=0.25)
    for ax, names in zip(axes[:2].flat, PANELS):
        present = [n for n in names if n in report["per_position"]]
        for name in present:
            # ranks are heavy-tailed: their median is the readable summary
            _line(ax, report, name, "median" if name.startswith("rank") else "mean")
        if not present:
            ax.text(0.5, 0.5, "not computed (no corpus unigram or EOS)", ha="center", va="center",
                    transform=ax.transAxes)
        else:
            ax.legend(fontsize=7)
        if present and names[0] == "rank":
            ax.set_yscale("log")
        ax.set_xlabel("distance from the prompt (mask position)")
        ax.grid(alpha=0.3)
    shares = report["top1_shares"]
    _heatmap(fig, axes[2, 0], shares["all"], "top-1 token per position: share of prompts")
    if "no_special" in shares:
        _heatmap(fig, axes[2, 1], shares["no_special"], "top-1 token without special tokens")
    else:
        axes[2, 1].axis("off")
    name = f"{report['label']} ({report['model']})" if report.get("label") else report["model"]
    fig.suptitle(f"Frequency-collapse probe: {name}\n{report['n_prompts']} prompts "
                 f"({report['prompt_source']}), {report['n_masks']} masks", fontsize=10)
    return fig
