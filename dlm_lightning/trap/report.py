"""Writes the marginal-trap results: trap.csv, trap.json, trap.md, trap.png and TensorBoard.

``rows`` hold one entry per (seed, decoder, tokens per step); every table, plot and scalar shows the
mean +- sample std over seeds of each (decoder, tokens per step) cell, and trap.md adds a per-seed table.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from dlm_lightning.report.grid import Stat, is_number, stat_of
from dlm_lightning.tensorboard_report import write_tensorboard_report
from dlm_lightning.trap.measure import BASELINE

CSV_FILE, JSON_FILE, MD_FILE, PNG_FILE = "trap.csv", "trap.json", "trap.md", "trap.png"
HEADLINE_K = 4
IDENTITY = ("seed", "decode_seed", "tokens_per_step")  # what names a row, not what it measured


def replicate(row: dict) -> str:
    """A row's replicate: its run's seed, and the decoding seed where that differs."""
    seed, decode = row.get("seed", 0), row.get("decode_seed", row.get("seed", 0))
    return str(seed) if decode == seed else f"{seed}/{decode}"


@dataclass
class TrapCell:
    decoder: str
    tokens_per_step: int
    seeds: list[str]  # replicates: "seed", or "seed/decode seed"
    stats: dict[str, Stat]

    def mean(self, metric: str) -> float:
        return self.stats[metric].mean if metric in self.stats else math.nan

    def has(self, metric: str) -> bool:
        return metric in self.stats and self.stats[metric].n > 0


def cells(rows: list[dict]) -> list[TrapCell]:
    """Mean +- std over seeds per (decoder, tokens per step), marginal first within each k."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["decoder"], row["tokens_per_step"]), []).append(row)
    out = []
    for (decoder, k), members in groups.items():
        metrics = dict.fromkeys(m for r in members for m, v in r.items() if is_number(v) and m not in IDENTITY)
        out.append(TrapCell(decoder, k, [replicate(r) for r in members],
                            {m: stat_of([r.get(m) for r in members]) for m in metrics}))
    return sorted(out, key=lambda c: (c.tokens_per_step, c.decoder != BASELINE, c.decoder))


def fmt(stat: Stat | None, spec: str = ".3f") -> str:
    """``mean +- std`` (the mean alone with one seed)."""
    if stat is None or stat.n == 0:
        return ""
    return f"{stat.mean:{spec}}" if math.isnan(stat.std) else f"{stat.mean:{spec}} ± {stat.std:{spec}}"


def markdown_table(table: list[TrapCell], rules: tuple[str, ...]) -> str:
    checked = all(c.has("validity") for c in table)  # data with a checker (the corpus)
    judged = all(c.has("gen_ppl") for c in table)
    head = ["decoder", "tokens/step", "seeds", "NFE", *(["validity"] if checked else []), "length bias", "length TV",
            *([*rules, "mixed entities /100"] if checked else []),
            *(["gen. ppl", "judge tokens"] if judged else []), *(["MAUVE"] if judged and table[0].has("mauve") else []),
            "unigram H (bits)", "tokens/s", "ms/step", "step cost vs marginal"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in table:
        s = c.stats
        quality = ([fmt(s["validity"])] if checked else []) + [fmt(s["length/bias"], ".2f"), fmt(s["length/tv"])]
        if checked:
            mixed = s.get("committed_invalid_entities")
            quality += [*(fmt(s[f"violation/{rule}"]) for rule in rules),
                        fmt(Stat(100 * mixed.mean, 100 * mixed.std, mixed.n), ".1f") if mixed else "0.0"]
        judge = [fmt(s["gen_ppl"], ".1f"), fmt(s["gen_tokens"], ".0f")] if judged else []
        judge += [fmt(s["mauve"])] if judged and c.has("mauve") else []
        ratio = fmt(s.get("step_cost_vs_marginal"), ".2f")
        cells_ = [c.decoder, str(c.tokens_per_step), str(len(c.seeds)), fmt(s["nfe"], ".1f"), *quality, *judge,
                  fmt(s["unigram_entropy"], ".2f"), fmt(s["tokens_per_s"], ".0f"), fmt(s["ms_per_step"], ".1f"),
                  f"{ratio}x" if ratio else ""]
        lines.append("| " + " | ".join(cells_) + " |")
    return "\n".join(lines)


def per_seed_table(rows: list[dict]) -> str:
    """Validity (or generative perplexity) of every seed, one column per (decoder, k)."""
    metric = "validity" if all("validity" in r for r in rows) else "gen_ppl" if all("gen_ppl" in r for r in rows) else None
    if metric is None:
        return ""
    columns = [(c.decoder, c.tokens_per_step) for c in cells(rows)]
    seeds = list(dict.fromkeys(replicate(r) for r in rows))
    value = {(replicate(r), r["decoder"], r["tokens_per_step"]): r[metric] for r in rows}
    lines = [f"| seed | " + " | ".join(f"{d} k={k}" for d, k in columns) + " |", "|" + "---|" * (len(columns) + 1)]
    for seed in seeds:
        lines.append(f"| {seed} | " + " | ".join(f"{value[seed, d, k]:.3f}" if (seed, d, k) in value else ""
                                                 for d, k in columns) + " |")
    return f"{metric} per seed:\n\n" + "\n".join(lines)


def summary(rows: list[dict], k: int = HEADLINE_K) -> list[str]:
    """The headline comparison, one line per decoder against the marginal decoder at ``k`` tokens per step,
    over seeds (invalid rates where the data has a checker, else generative perplexity)."""
    table = {(c.decoder, c.tokens_per_step): c for c in cells(rows)}
    names = [name for name in dict.fromkeys(r["decoder"] for r in rows) if name != BASELINE]
    return [line for name in names if (line := _summary_line(rows, table, name, k))]


def _summary_line(rows: list[dict], table: dict, name: str, k: int) -> str:
    other, marginal = table.get((name, k)), table.get((BASELINE, k))
    if other is None or marginal is None:
        return ""
    cost = f"per-step cost {fmt(other.stats.get('step_cost_vs_marginal'), '.2f')}x"
    if not other.has("invalid"):
        if not other.has("gen_ppl"):
            return ""
        return (f"at {k} tokens/step: generative perplexity {fmt(marginal.stats['gen_ppl'], '.1f')} (marginal, entropy "
                f"{fmt(marginal.stats['unigram_entropy'], '.2f')} bits) -> {fmt(other.stats['gen_ppl'], '.1f')} ({name}, "
                f"entropy {fmt(other.stats['unigram_entropy'], '.2f')} bits); {cost}")
    invalid = {(replicate(r), r["decoder"]): r["invalid"] for r in rows if r["tokens_per_step"] == k}
    seeds = [seed for seed in dict.fromkeys(s for s, _ in invalid) if (seed, name) in invalid
             and (seed, BASELINE) in invalid]
    shares = [invalid[seed, name] / invalid[seed, BASELINE] if invalid[seed, BASELINE] > 0 else math.nan
              for seed in seeds]
    line = (f"at {k} tokens/step: invalid {fmt(marginal.stats['invalid'])} (marginal) -> {fmt(other.stats['invalid'])} "
            f"({name}); {name}/marginal invalid per seed " + ", ".join(f"{x:.2f}" for x in shares)
            + (f" (worst {max(shares):.2f})" if len(shares) > 1 and not any(map(math.isnan, shares)) else ""))
    one = table.get((BASELINE, 1))
    if one is not None and one.has("validity"):
        line += (f"; validity {fmt(other.stats['validity'])} ({name}, {k}/step) against {fmt(one.stats['validity'])} "
                 f"(marginal, 1/step)")
    return f"{line}; {cost}"


def markdown(rows: list[dict], rules: tuple[str, ...], settings: dict) -> str:
    seeds = list(dict.fromkeys(replicate(r) for r in rows))
    lines = ["# Marginal trap: sample quality versus tokens per step", "",
             *(f"- {key}: {value}" for key, value in settings.items()), "",
             f"Each cell is the mean ± sample standard deviation over {len(seeds)} seed(s) ({', '.join(seeds)}; "
             "a seed is one trained run, decoded with the same seed, or seed/decoding seed). "
             "Every decoder decodes the same test prompts with the same random generator per batch. "
             "NFE = denoiser calls per answer (a decoder that verifies its drafts, such as speculative, may spend more "
             "than tokens/step implies; the others spend exactly answer length / tokens/step); rule columns "
             "are violation rates; mixed entities: pairs committed in one step that never co-occur (per 100 "
             "answers); length bias and TV: |mean answer length - the data's| and the total variation between "
             "the two length distributions (frequency collapse, docs/collapse.md); gen. ppl: generative perplexity "
             "of the answers under the judge (re-tokenised, scored up to and including the first end of text; always "
             "read with the unigram entropy beside it: low entropy games it); step cost: median per-step time over "
             "the marginal decoder's on the same batch.", "",
             markdown_table(cells(rows), rules), ""]
    if len(seeds) > 1 and (seed_table := per_seed_table(rows)):
        lines += [seed_table, ""]
    headline = summary(rows)
    return "\n".join(lines + [f"- {line}" for line in headline] + ([""] if headline else []))


def write_csv(rows: list[dict], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        writer.writeheader()
        writer.writerows(rows)


def plot(rows: list[dict], rules: tuple[str, ...], path: Path) -> None:
    """Validity, and each rule's violation rate, against tokens per step; one line per decoder (mean, with
    the std over seeds as error bars)."""
    table = cells(rows)
    decoders = list(dict.fromkeys(c.decoder for c in sorted(table, key=lambda c: (c.decoder != BASELINE, c.decoder))))
    ks = sorted({c.tokens_per_step for c in table})
    if all(c.has("validity") for c in table):
        panels = ["validity", *(f"violation/{rule}" for rule in rules)]
    else:  # real text: no checker; generative perplexity (when judged) beside the entropy
        panels = [*(["gen_ppl"] if all(c.has("gen_ppl") for c in table) else []), "unigram_entropy"]
    columns = min(3, len(panels))
    fig = Figure(figsize=(4.2 * columns, 3.2 * math.ceil(len(panels) / columns)), layout="constrained")
    axes = fig.subplots(math.ceil(len(panels) / columns), columns, squeeze=False).ravel()
    for ax, metric in zip(axes, panels):
        for decoder in decoders:
            points = sorted((c.tokens_per_step, c.stats[metric]) for c in table if c.decoder == decoder)
            ax.errorbar([k for k, _ in points], [st.mean for _, st in points],
                        yerr=[0.0 if math.isnan(st.std) else st.std for _, st in points],
                        marker="o", capsize=3, label=decoder)
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
    seeds = len({replicate(r) for r in rows})
    fig.suptitle(f"Marginal trap: quality versus tokens decoded per denoiser call ({seeds} seed(s))")
    fig.savefig(path, dpi=110)


def write_tensorboard(rows: list[dict], text: str, png: Path, directory: Path, gap_rows: list[dict] = ()) -> None:
    """Per decoder, every metric's mean over seeds as a scalar with step = tokens per step; the gap with
    step = k or distance; the report text and the figure."""
    scalars = [(f"trap/{c.decoder}/{key}", stat.mean, c.tokens_per_step)
               for c in cells(rows) for key, stat in c.stats.items() if stat.n > 0]
    gaps: dict[tuple, list[float]] = {}
    for row in gap_rows:
        gaps.setdefault((row["by"], row["value"]), []).append(row["gap_nats_per_token"])
    scalars += [(f"trap/gap_by_{by}", stat_of(values).mean, value) for (by, value), values in gaps.items()]
    write_tensorboard_report(directory, "trap", scalars, text, png)


def gap_markdown(gap_rows: list[dict]) -> str:
    """The factorisation gap table (metrics/factorisation.py)."""
    lines = ["## Factorisation gap", "",
             "Expected log-likelihood gain of the dependency head's joint over the product of marginals for "
             "positions committed together, in nats per committed token (mean +- standard error over held-out "
             "rows at t ~ U(0, 1)); a lower bound on the conditional total correlation those positions carry, "
             "i.e. on what a k-token marginal step loses.", "",
             "| seed | by | value | positions | gap (nats/token) | stderr | rows |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r.get('seed', 0)} | {r['by']} | {r['value']} | {r['positions']} | {r['gap_nats_per_token']:.4f} | "
              f"{r['stderr']:.4f} | {r['rows']} |" for r in gap_rows]
    return "\n".join(lines + [""])


def write_all(rows: list[dict], rules: tuple[str, ...], settings: dict, out_dir: Path,
              gap_rows: list[dict] = ()) -> str:
    """Writes every output into ``out_dir``; returns the Markdown report."""
    text = markdown(rows, rules, settings) + ("\n" + gap_markdown(gap_rows) if gap_rows else "")
    write_csv(rows, out_dir / CSV_FILE)
    summary_cells = [{"decoder": c.decoder, "tokens_per_step": c.tokens_per_step, "seeds": c.seeds,
                      **{m: {"mean": st.mean, "std": None if math.isnan(st.std) else st.std, "n": st.n}
                         for m, st in c.stats.items()}} for c in cells(rows)]
    (out_dir / JSON_FILE).write_text(json.dumps({"settings": settings, "rows": rows, "cells": summary_cells,
                                                 "gap": list(gap_rows)}, indent=2) + "\n")
    (out_dir / MD_FILE).write_text(text)
    plot(rows, rules, out_dir / PNG_FILE)
    write_tensorboard(rows, text, out_dir / PNG_FILE, out_dir / "tensorboard", gap_rows)
    return text
