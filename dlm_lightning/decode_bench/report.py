"""The decoding benchmark's table (markdown) and files (JSON with every per-seed row and the summary)."""

from __future__ import annotations

import json
from pathlib import Path

SUMMARY_KEYS = ("tokens_per_s", "speedup", "nfe", "ms_per_step", "peak_mib", "peak_extra_mib", "validity",
                "unigram_entropy", "mean_length", "length_bias", "agreement", "same_answer")


def _cell(row: dict, key: str, digits: int = 2, scale: float = 1.0) -> str:
    value = row.get(key)
    if value is None:
        return "-"
    std = row.get(f"{key}_std") or 0.0
    text = f"{scale * value:.{digits}f}"
    return text + (f" ± {scale * std:.{digits}f}" if len(row.get("seeds", [])) > 1 else "")


def markdown_table(summary: list[dict]) -> str:
    head = ("| A | device | setting | tokens/s | speed-up vs none | NFE | ms/step | peak MiB (+decode) | validity % "
            "| mean length | length bias | agreement % | same answer % |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in summary:
        peak = "-" if r.get("peak_mib") is None else f"{r['peak_mib']:.0f} (+{r['peak_extra_mib'] or 0:.0f})"
        lines.append(" | ".join([
            f"| {r['answer_length']}", r["device"], r["label"], _cell(r, "tokens_per_s", 0), _cell(r, "speedup"),
            _cell(r, "nfe", 1), _cell(r, "ms_per_step", 1), peak, _cell(r, "validity", 1, 100),
            _cell(r, "mean_length", 1), _cell(r, "length_bias", 1), _cell(r, "agreement", 1, 100),
            _cell(r, "same_answer", 1, 100)]) + " |")
    return "\n".join(lines)


def write(rows: list[dict], summary: list[dict], settings: dict, out_dir: Path) -> str:
    table = markdown_table(summary)
    (out_dir / "bench_decode.json").write_text(json.dumps({"settings": settings, "summary": summary, "rows": rows},
                                                          indent=1))
    header = "\n".join(f"- {k}: {v}" for k, v in settings.items())
    (out_dir / "bench_decode.md").write_text(f"# Decoding benchmark\n\n{header}\n\n{table}\n")
    return table
