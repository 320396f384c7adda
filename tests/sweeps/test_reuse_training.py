"""reuse_training: sweep jobs that differ only in their decoder train once, and nothing else is shared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict
from suite_helpers import compose_config
from sweep_helpers import FAST

from dlm_lightning.run.reuse import find_trained_run, training_fingerprint

pytestmark = pytest.mark.long  # real processes or many trainings: scheduled first under xdist

TINY = [*FAST, "data.train_size=64"]  # two training batches


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def _weights(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]


def test_fingerprint_ignores_the_decoder_only():
    def fingerprint(*overrides):
        cfg = compose_config(overrides)
        with open_dict(cfg):  # as saved in a run directory: the chosen option of every group
            cfg.choices = {"schedule": "uniform", "decoder": cfg.decoder._target_}
        return training_fingerprint(cfg)

    base = fingerprint("decoder=marginal")
    assert fingerprint("decoder=ancestral", "reuse_training=true") == base
    assert fingerprint("decoder=marginal", "decoder.tokens_per_step=4") == base
    assert fingerprint("decoder=marginal", "seed=1") != base
    assert fingerprint("decoder=marginal", "schedule=adaptive") != base
    assert fingerprint("decoder=marginal", "module.optimizer.lr=0.001") != base


def test_find_trained_run_takes_only_a_finished_original_with_the_same_fingerprint(tmp_path: Path):
    def job(name: str, metrics: dict | None, checkpoint: bool = True) -> Path:
        path = tmp_path / name
        (path / "checkpoints").mkdir(parents=True)
        if checkpoint:
            (path / "checkpoints" / "last.ckpt").write_bytes(b"")
        if metrics is not None:
            (path / "metrics.json").write_text(json.dumps(metrics))
        return path

    me = job("me", None)
    job("a_unfinished", None)
    job("b_other", {"training_fingerprint": "other"})
    job("c_no_checkpoint", {"training_fingerprint": "key"}, checkpoint=False)
    job("d_reused", {"training_fingerprint": "key", "trained_in": "elsewhere"})
    assert find_trained_run(me, "key") is None
    original = job("e_original", {"training_fingerprint": "key"})
    assert find_trained_run(me, "key") == original


def test_a_sweep_trains_once_per_training_config_and_equals_training_again(tmp_path: Path, run_cli):
    sweep_run = run_cli("-m", *TINY, "decoder=marginal,ancestral", "seed=0,1", "reuse_training=true",
                        cwd=tmp_path, timeout=600)
    assert sweep_run.returncode == 0, sweep_run.stderr[-4000:]
    (sweep,) = (tmp_path / "outputs" / "sweeps").iterdir()
    for seed in (0, 1):
        trained = sweep / f"decoder=marginal,seed={seed}"
        reused = sweep / f"decoder=ancestral,seed={seed}"
        assert "trained_in" not in _metrics(trained)
        assert _metrics(reused)["trained_in"] == str(trained)
        assert _metrics(reused)["global_step"] == _metrics(trained)["global_step"] == 2
        assert _metrics(reused)["val/nelbo"] == _metrics(trained)["val/nelbo"]  # the same weights, evaluated again
        assert not list((reused / "checkpoints").glob("best-*.ckpt"))  # it did not train
    assert _metrics(sweep / "decoder=ancestral,seed=0")["val/nelbo"] != _metrics(sweep / "decoder=ancestral,seed=1")["val/nelbo"]

    # training the reused job's config from scratch gives exactly what it evaluated
    single = run_cli(*TINY, "decoder=ancestral", "seed=1", cwd=tmp_path, timeout=600)
    assert single.returncode == 0, single.stderr[-4000:]
    fresh, reused = Path(single.stdout.strip().splitlines()[-1]), sweep / "decoder=ancestral,seed=1"
    assert "trained_in" not in _metrics(fresh)
    for key in ("val/nelbo", "test/nelbo", "sample/validity"):
        assert _metrics(fresh)[key] == _metrics(reused)[key], key
    fresh_weights, reused_weights = _weights(fresh), _weights(reused)
    assert all(torch.equal(fresh_weights[name], reused_weights[name]) for name in fresh_weights)
