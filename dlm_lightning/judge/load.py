"""A judge named on a command line: a run directory of this suite, or a Hugging Face model."""

from __future__ import annotations

from pathlib import Path

from dlm_lightning.build import config_group
from dlm_lightning.judge.base import Judge
from dlm_lightning.run.layout import CONFIG_FILE


def load_judge(spec: str, batch_size: int = 16, mauve: bool = False) -> Judge:
    """``spec``: a suite run trained with objective=autoregressive, or an HF causal LM name / path."""
    with config_group("judge"):  # its config errors name judge.<key>
        if (Path(spec) / CONFIG_FILE).is_file():
            from dlm_lightning.judge.suite import SuiteJudge

            return SuiteJudge(spec, batch_size=batch_size, mauve=mauve)
        from dlm_lightning.judge.hf import HFJudge

        return HFJudge(spec, batch_size=batch_size, mauve=mauve)
