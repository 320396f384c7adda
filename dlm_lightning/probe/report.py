"""The probe's report as one JSON-ready dict (``probe.json``): settings, aggregates and every prediction.

The Markdown, CSV, plot and TensorBoard writers all read this dict, so a saved ``probe.json`` is
enough to redraw or compare probes.
"""

from __future__ import annotations

import math

from dlm_lightning.probe.aggregate import metrics_of, per_position, quarters, top1_shares, trends
from dlm_lightning.probe.compute import ProbeResult
from dlm_lightning.probe.source import ProbeModel


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None  # JSON has no nan


def collapse_summary(quarter_means: dict, trend: dict) -> dict:
    """The two measured claims: KL to unigram falls from the first to the last quarter, P(EOS) rises."""
    out = {}
    for name in ("kl", "kl_content", "p_eos", "entropy"):
        if name in quarter_means:
            first, last = quarter_means[name][0], quarter_means[name][-1]
            out[f"{name}_first_quarter"], out[f"{name}_last_quarter"] = _number(first), _number(last)
            out[f"{name}_spearman_vs_distance"] = _number(trend[name])
    if "kl" in quarter_means:
        out["kl_last_below_first"] = quarter_means["kl"][-1] < quarter_means["kl"][0]
    if "p_eos" in quarter_means:
        out["p_eos_rises"] = quarter_means["p_eos"][-1] > quarter_means["p_eos"][0] and trend["p_eos"] > 0
    return out


def _topk(ids, probs, model: ProbeModel) -> list[list]:
    return [[model.token_text(i), i, round(p, 6)] for i, p in zip(ids, probs)]


def build_report(result: ProbeResult, model: ProbeModel, settings: dict) -> dict:
    positions = per_position(result)
    quarter_means = quarters(result) if result.n_masks >= 4 else {}
    trend = trends(result, positions)
    scalars = metrics_of(result)
    prompts = []
    for p, text in enumerate(result.prompts):
        rows = []
        for j in range(result.n_masks):
            row = {"position": j + 1}
            row.update({name: round(result.stats[name][p, j].item(), 6) for name in scalars})
            row["topk"] = _topk(result.stats["topk_ids"][p, j].tolist(), result.stats["topk_probs"][p, j].tolist(), model)
            if result.has("topk_ids_content"):
                row["topk_no_special"] = _topk(result.stats["topk_ids_content"][p, j].tolist(),
                                               result.stats["topk_probs_content"][p, j].tolist(), model)
            rows.append(row)
        prompts.append({"index": p, "text": text, "prompt_tokens": result.prompt_lengths[p], "positions": rows})
    shares = {}
    for key, content in (("all", False), ("no_special", True)):
        if content and not result.has("topk_ids_content"):
            continue
        tokens, matrix = top1_shares(result, content=content)
        shares[key] = {"tokens": [model.token_text(t) for t in tokens], "token_ids": tokens,
                       "shares": [[round(v, 4) for v in row] for row in matrix.tolist()]}
    return {
        **settings,
        "model": model.name,
        "n_prompts": len(result.prompts),
        "n_masks": result.n_masks,
        "eos_token": None if model.eos_id is None else model.token_text(model.eos_id),
        "special_tokens": [model.token_text(i) for i in model.special_ids],
        "notes": result.notes,
        "metrics": scalars,
        "collapse": collapse_summary(quarter_means, trend),
        "quarters": {k: [_number(v) for v in values] for k, values in quarter_means.items()},
        "spearman_vs_distance": {k: _number(v) for k, v in trend.items()},
        "per_position": positions,
        "top1_shares": shares,
        "prompts": prompts,
    }
