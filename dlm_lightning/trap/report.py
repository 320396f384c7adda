"""Writes the marginal-trap results: trap.csv, trap.json, trap.md, trap.png and TensorBoard."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from matplotlib.figure import Figure

from dlm_lightning.tensorboard_report import write_report
from dlm_lightning.trap.measure import BASELINE

CSV_FILE, JSON_FILE, MD_FILE, PNG_FILE = "trap.csv", "trap.json", "trap.md", "trap.png"


def markdown_table(rows: list[dict], rules: tuple[str, ...]) -> str:
    checked = all("validity" in r for r in rows)  # data with a checker (the corpus)
    judged = all("gen_ppl" in r for r in rows)
    head = ["decoder", "tokens/step", "NFE", *(["validity"] if checked else []), "length bias", "length TV",
            *([*rules, "mixed entities /100"] if checked else []),
            *(["gen. ppl", "judge tokens"] if judged else []), *(["MAUVE"] if judged and "mauve" in rows[0] else []),
            "unigram H (bits)", "tokens/s", "ms/step", "step cost vs marginal"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(rows, key=lambda r: (r["tokens_per_step"], r["decoder"] != BASELINE, r["decoder"])):
        ratio = "" if r["step_cost_vs_marginal"] is None else f"{r['step_cost_vs_marginal']:.2f}x"
        quality = ([f"{r['validity']:.3f}"] if checked else []) + [f"{r['length/bias']:.2f}", f"{r['length/tv']:.3f}"]
        quality += ([*(f"{r[f'violation/{rule}']:.3f}" for rule in rules),
                     f"{100 * r.get('committed_invalid_entities', 0.0):.1f}"] if checked else [])
        judge = [f"{r['gen_ppl']:.1f}", f"{r['gen_tokens']:.0f}"] if judged else []
        judge += [f"{r['mauve']:.3f}"] if judged and "mauve" in r else []
        cells = [r["decoder"], str(r["tokens_per_step"]), f"{r['nfe']:.1f}", *quality, *judge,
                 f"{r['unigram_entropy']:.2f}", f"{r['tokens_per_s']:.0f}", f"{r['ms_per_step']:.1f}", ratio]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(rows: list[dict], k: int = 4) -> str:
    """One line on the headline comparison: joint against marginal at ``k`` tokens per step."""
    at = {r["decoder"]: r for r in rows if r["tokens_per_step"] == k}
    if "joint" not in at or BASELINE not in at:
        return ""
    joint, marginal = at["joint"], at[BASELINE]
    cost = f"per-step cost {joint['step_cost_vs_marginal']:.2f}x"
    if "invalid" not in joint:
        if "gen_ppl" not in joint:
            return ""
        return (f"at {k} tokens/step: generative perplexity {marginal['gen_ppl']:.1f} (marginal, entropy "
                f"{marginal['unigram_entropy']:.2f} bits) -> {joint['gen_ppl']:.1f} (joint, entropy "
                f"{joint['unigram_entropy']:.2f} bits); {cost}")
    share = joint["invalid"] / marginal["invalid"] if marginal["invalid"] > 0 else math.nan
    return (f"at {k} tokens/step: invalid {marginal['invalid']:.3f} (marginal) -> {joint['invalid']:.3f} (joint), "
            f"{share:.2f} of the marginal's; {cost}")


def markdown(rows: list[dict], rules: tuple[str, ...], settings: dict) -> str:
    lines = ["# Marginal trap: sample quality versus tokens per step", "",
             *(f"- {key}: {value}" for key, value in settings.items()), "",
             "Every decoder decodes the same test prompts with the same random generator per batch. "
             "NFE = denoiser calls per answer (a decoder that verifies its drafts, such as speculative, may spend more "
             "than tokens/step implies; the others spend exactly answer length / tokens/step); rule columns "
             "are violation rates; mixed entities: pairs committed in one step that never co-occur (per 100 "
             "answers); length bias and TV: |mean answer length - the data's| and the total variation between "
             "the two length distributions (frequency collapse, docs/collapse.md); gen. ppl: generative perplexity "
             "of the answers under the judge (re-tokenised, scored up to and including the first end of text; always "
             "read with the unigram entropy beside it: low entropy games it); step cost: median per-step time over "
             "the marginal decoder's on the same batch.", "",
             markdown_table(rows, rules), ""]
    line = summary(rows)
    return "\n".join(lines + ([f"- {line}", ""] if line else []))


def write_csv(rows: list[dict], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot(rows: list[dict], rules: tuple[str, ...], path: Path) -> None:
    """Validity, and each rule's violation rate, against tokens per step; one line per decoder."""
    decoders = sorted({r["decoder"] for r in rows}, key=lambda d: (d != BASELINE, d))
    ks = sorted({r["tokens_per_step"] for r in rows})
    if all("validity" in r for r in rows):
        panels = ["validity", *(f"violation/{rule}" for rule in rules)]
    else:  # real text: no checker; generative perplexity (when judged) beside the entropy
        panels = [*(["gen_ppl"] if all("gen_ppl" in r for r in rows) else []), "unigram_entropy"]
    columns = min(3, len(panels))
    fig = Figure(figsize=(4.2 * columns, 3.2 * math.ceil(len(panels) / columns)), layout="constrained")
    axes = fig.subplots(math.ceil(len(panels) / columns), columns, squeeze=False).ravel()
    for ax, metric in zip(axes, panels):
        for decoder in decoders:
            points = sorted((r["tokens_per_step"], r[metric]) for r in rows if r["decoder"] == decoder)
            ax.plot(*zip(*points), marker="o", label=decoder)
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("tokens per step")
        ax.set_title(metric)
        if metric == "validity" or metric.startswith("violation/"):
            ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend()
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.suptitle("Marginal trap: quality versus tokens decoded per denoiser call")
    fig.savefig(path, dpi=110)


def write_tensorboard(rows: list[dict], text: str, png: Path, directory: Path, gap_rows: list[dict] = ()) -> None:
    """Per decoder, every metric as a scalar with step = tokens per step; the gap with step = k or distance;
    the report text and the figure."""
    scalars = [(f"trap/{row['decoder']}/{key}", value, row["tokens_per_step"])
               for row in rows for key, value in row.items() if isinstance(value, float)]
    scalars += [(f"trap/gap_by_{row['by']}", row["gap_nats_per_token"], row["value"]) for row in gap_rows]
    write_report(directory, "trap", scalars, text, png)


def gap_markdown(gap_rows: list[dict]) -> str:
    """The factorisation gap table (metrics/factorisation.py)."""
    lines = ["## Factorisation gap", "",
             "Expected log-likelihood gain of the dependency head's joint over the product of marginals for "
             "positions committed together, in nats per committed token (mean +- standard error over held-out "
             "rows at t ~ U(0, 1)); a lower bound on the conditional total correlation those positions carry, "
             "i.e. on what a k-token marginal step loses.", "",
             "| by | value | positions | gap (nats/token) | stderr | rows |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['by']} | {r['value']} | {r['positions']} | {r['gap_nats_per_token']:.4f} | "
              f"{r['stderr']:.4f} | {r['rows']} |" for r in gap_rows]
    return "\n".join(lines + [""])


def write_all(rows: list[dict], rules: tuple[str, ...], settings: dict, out_dir: Path,
              gap_rows: list[dict] = ()) -> str:
    """Writes every output into ``out_dir``; returns the Markdown report."""
    text = markdown(rows, rules, settings) + ("\n" + gap_markdown(gap_rows) if gap_rows else "")
    write_csv(rows, out_dir / CSV_FILE)
    (out_dir / JSON_FILE).write_text(json.dumps({"settings": settings, "rows": rows, "gap": list(gap_rows)},
                                                indent=2) + "\n")
    (out_dir / MD_FILE).write_text(text)
    plot(rows, rules, out_dir / PNG_FILE)
    write_tensorboard(rows, text, out_dir / PNG_FILE, out_dir / "tensorboard", gap_rows)
    return text
