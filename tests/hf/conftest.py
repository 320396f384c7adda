"""The tiny local Hugging Face models of tests/hf, saved once per session."""

from __future__ import annotations

import pytest

from hf_fixtures import save_causal_lm, save_remote_dlm, save_tiny_bert


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf_models")
    return {"bert": save_tiny_bert(root / "bert"), "remote": save_remote_dlm(root / "remote"),
            "gpt": save_causal_lm(root / "gpt")}
