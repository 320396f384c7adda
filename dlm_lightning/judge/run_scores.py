"""The judge's scores of a run's test samples (samples.jsonl), as ``sample/*`` metrics."""

from __future__ import annotations

import json
from pathlib import Path

from dlm_lightning.judge.base import Judge
from dlm_lightning.judge.scoring import score_answers


def judge_run_samples(judge: Judge, info, samples_file: Path, datamodule) -> dict:
    """sample/gen_ppl, sample/gen_nll, sample/gen_tokens (sample/mauve) and the judge's name."""
    records = [json.loads(line) for line in samples_file.read_text().splitlines()]
    answers = [r["answer_ids"] for r in records]
    references = None
    if judge.mauve:  # the true answers of the same test rows
        test = datamodule.dataset("test")
        references = [test[r["index"]]["input_ids"][info.prompt_length:].tolist() for r in records]
    scores = score_answers(judge, info.tokenizer, info.eos_id, answers, references)
    return {**{f"sample/{k}": v for k, v in scores.items()}, "judge": judge.describe()}
