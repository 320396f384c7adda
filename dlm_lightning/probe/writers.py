"""Writes a probe report into its directory: probe.json, probe_topk.csv, probe.md, probe.png, TensorBoard."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from dlm_lightning.probe.aggregate import LABELS
from dlm_lightning.tensorboard_report import write_tensorboard_report

JSON_FILE, CSV_FILE, MD_FILE, PNG_FILE = "probe.json", "probe_topk.csv", "probe.md", "probe.png"


def default_table_positions(n: int) -> list[int]:
    """Early, middle and late positions (1-based): the first three, three around the middle, the last three."""
    middle = (n + 1) // 2
    chosen = [1, 2, 3, middle - 1, middle, middle + 1, n - 2, n - 1, n]
    return sorted({p for p in chosen if 1 <= p <= n})


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'").replace("\n", "\\n")


def _probability(p: float) -> str:
    return f"{p:.2f}" if p >= 0.005 else f"{p:.0e}"  # small ones stay distinguishable from 0


def _topk_cell(entries: list) -> str:
    return ", ".join(f"`{_cell(token)}` {_probability(p)}" for token, _, p in entries)


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.3g}"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def write_csv(report: dict, path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "position", "rank", "token", "token_id", "probability", "special_excluded"])
        for prompt in report["prompts"]:
            for row in prompt["positions"]:
                for key, excluded in (("topk", False), ("topk_no_special", True)):
                    for rank, (token, token_id, p) in enumerate(row.get(key, []), start=1):
                        writer.writerow([prompt["index"], row["position"], rank, token, token_id, p, excluded])


def markdown(report: dict, table_prompts: int = 3, table_positions: list[int] | None = None,
             max_rows: int = 48) -> str:
    n = report["n_masks"]
    positions = [p for p in (table_positions or default_table_positions(n)) if 1 <= p <= n]
    title = "# Frequency-collapse probe" + (f": {report['label']}" if report.get("label") else "")
    lines = [title, "",
             f"- model: `{report['model']}`",
             f"- prompts: {report['n_prompts']} ({report['prompt_source']})",
             f"- masks after each prompt: {n} (requested {report['n_masks_requested']}); top-k: {report['top_k']}",
             f"- corpus unigram: {report['unigram_source'] or 'none (KL and ranks not computed)'}",
             f"- EOS: `{report['eos_token']}`; special tokens: "
             + ", ".join(f"`{_cell(t)}`" for t in report["special_tokens"])]
    lines += [f"- note: {note}" for note in report["notes"]]
    lines += ["", "Positions count from 1, the first mask after the prompt. KL and entropy in nats; ranks: "
                  "1 = the corpus's most frequent token.", ""]
    if report["quarters"]:
        lines += ["## Collapse summary (mean per quarter of the positions)", "",
                  "| metric | Q1 | Q2 | Q3 | Q4 | Spearman vs distance |", "|---|---|---|---|---|---|"]
        for name, values in report["quarters"].items():
            lines.append(f"| {LABELS[name]} | " + " | ".join(_fmt(v) for v in values)
                         + f" | {_fmt(report['spearman_vs_distance'][name])} |")
        lines.append("")
        collapse = report["collapse"]
        if "kl_last_below_first" in collapse:
            lines.append(f"- KL to unigram, last quarter below first: **{_yes(collapse['kl_last_below_first'])}** "
                         f"({_fmt(collapse['kl_last_quarter'])} vs {_fmt(collapse['kl_first_quarter'])} nats)")
        if "p_eos_rises" in collapse:
            lines.append(f"- P(EOS) rises with distance: **{_yes(collapse['p_eos_rises'])}** "
                         f"({_fmt(collapse['p_eos_first_quarter'])} → {_fmt(collapse['p_eos_last_quarter'])}, "
                         f"Spearman {_fmt(collapse['p_eos_spearman_vs_distance'])})")
        lines.append("")
    lines += ["## Top-3 predictions at early, middle and late positions", ""]
    for prompt in report["prompts"][:table_prompts]:
        lines += [f"Prompt {prompt['index']}: `{_cell(prompt['text'][:200])}`", "",
                  "| position | top-k | top-k without special tokens | entropy | P(EOS) |", "|---|---|---|---|---|"]
        for p in positions:
            row = prompt["positions"][p - 1]
            lines.append(f"| {p} | {_topk_cell(row['topk'])} | {_topk_cell(row.get('topk_no_special', []))} | "
                         f"{row['entropy']:.2f} | {_fmt(row.get('p_eos'))} |")
        lines.append("")
    metrics = report["metrics"]
    stride = max(1, -(-n // max_rows))
    shown = sorted(set(range(1, n + 1, stride)) | {n})
    lines += [f"## Per-position aggregates over {report['n_prompts']} prompts (mean ± std; ranks: median)", ""]
    lines += ["| position | " + " | ".join(LABELS[m] for m in metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for p in shown:
        cells = []
        for m in metrics:
            values = report["per_position"][m]
            cells.append(f"{values['median'][p - 1]:.0f}" if m.startswith("rank")
                         else f"{values['mean'][p - 1]:.3f} ± {values['std'][p - 1]:.3f}")
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_tensorboard(report: dict, text: str, png: Path, directory: Path) -> None:
    """Per-position means as scalars (step = position), the Markdown report, and the figure."""
    scalars = ((f"probe/{name}_mean", value, j + 1)
               for name, values in report["per_position"].items() for j, value in enumerate(values["mean"]))
    write_tensorboard_report(directory, "probe", scalars, text, png)


def write_all(report: dict, out_dir: Path, table_prompts: int = 3, table_positions: list[int] | None = None,
              tensorboard: bool = True) -> None:
    import matplotlib.pyplot as plt

    from dlm_lightning.probe.plot import probe_figure

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / JSON_FILE).write_text(json.dumps(report, indent=1) + "\n")
    write_csv(report, out_dir / CSV_FILE)
    text = markdown(report, table_prompts, table_positions)
    (out_dir / MD_FILE).write_text(text)
    figure = probe_figure(report)
    figure.savefig(out_dir / PNG_FILE, dpi=110)
    plt.close(figure)
    if tensorboard:
        write_tensorboard(report, text, out_dir / PNG_FILE, out_dir / "tensorboard")
