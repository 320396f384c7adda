"""The suite path: a tiny run trained in-process (a real run directory and Lightning checkpoint),
loaded by dlm_lightning.run.load and probed, and the experiments.probe entry point end to end."""

import shutil
from pathlib import Path

import pytest

from suite_helpers import REPO, cli_env, compose_config, run_entry_point
import torch
from omegaconf import OmegaConf

from dlm_lightning.errors import CheckpointMismatch, ConfigError, RunDirError, UserError
from dlm_lightning.run.experiment import new_run, run_experiment
from dlm_lightning.probe.compute import run_probe
from dlm_lightning.probe.suite_model import SuiteModel
from dlm_lightning.run.load import find_checkpoint, load_run

pytestmark = pytest.mark.long  # real processes or many trainings: scheduled first under xdist

TINY = ["model=tiny", "trainer.max_epochs=1", "data.train_size=64", "data.val_size=32", "data.test_size=32",
        "data.batch_size=32", "data.eval_batch_size=32", "callbacks.progress=null", "callbacks.throughput=null",
        "trainer.precision=32-true"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    cfg = compose_config(TINY)
    path = tmp_path_factory.mktemp("suite") / "run"
    cfg = new_run(path, cfg, {"schedule": "uniform", "decoder": "marginal", "model": "tiny", "data": "corpus"})
    run_experiment(cfg, path)
    return path


def test_load_run_restores_the_checkpoint_weights(run_dir):
    loaded = load_run(run_dir)
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert loaded.checkpoint.name == "last.ckpt" and loaded.schedule_name == "uniform"
    assert not loaded.module.training
    for name, tensor in loaded.module.state_dict().items():
        torch.testing.assert_close(tensor, saved[name], rtol=0, atol=0)
    best = find_checkpoint(run_dir, "best")[1]
    assert best.name.startswith("best-") and find_checkpoint(best) == (run_dir, best)


def test_run_errors_are_one_line(run_dir, tmp_path):
    with pytest.raises(RunDirError, match="no such file or directory"):
        find_checkpoint(tmp_path / "missing")
    with pytest.raises(RunDirError, match="no config.yaml there, so it is not a run directory"):
        find_checkpoint(tmp_path)
    with pytest.raises(ConfigError, match="checkpoint='first' is invalid: one of last, best"):
        find_checkpoint(run_dir, "first")
    other = tmp_path / "other"
    shutil.copytree(run_dir, other, ignore=shutil.ignore_patterns("tensorboard", "best-*"))
    cfg = OmegaConf.load(other / "config.yaml")
    cfg.model.d_model = 16
    OmegaConf.save(cfg, other / "config.yaml")
    with pytest.raises(CheckpointMismatch, match="checkpoint model mismatch at denoiser.backbone"):
        load_run(other)


def test_suite_model_uses_the_training_layout(run_dir):
    model = SuiteModel(str(run_dir))
    info, tok = model.info, model.tokenizer
    text = "he lives in paris . i like chess . where does he live ?"
    ids = model.encode(text)
    assert ids == [tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"] + [tok.sep_token_id]
    got = model.mask_log_probs([ids], 5)
    z = torch.tensor([[info.pad_id] * (info.prompt_length - len(ids)) + ids + [info.mask_id] * 5])
    expected = model.loaded.module.denoiser(z, torch.ones(1)).log_probs[:, info.prompt_length:]
    torch.testing.assert_close(got, expected)
    with pytest.raises(UserError, match="words outside the vocabulary"):
        model.encode("can brain cells move ?")
    with pytest.raises(UserError, match="has 26 tokens; this model's prompts hold at most 18"):
        model.encode(" ".join(["he"] * 24))


def test_suite_probe_caps_masks_and_uses_the_training_unigram(run_dir):
    model = SuiteModel(str(run_dir))
    result = run_probe(model, ["he lives in rome . we like golf . where does he live ?"] * 2,
                       n_masks=128, unigram=model.training_unigram()[0])
    assert result.n_masks == model.info.answer_length == 40
    assert any("n_masks=128 capped at 40" in note for note in result.notes)
    assert result.stats["kl"].shape == (2, 40) and (result.stats["kl"] >= 0).all()
    assert result.stats["rank"].min() >= 1


def test_entry_point_writes_a_new_directory_and_never_reuses_it(run_dir, tmp_path):
    out = tmp_path / "probe"
    args = [f"run={run_dir}", "prompts.limit=4", "n_masks=8", f"hydra.run.dir={out}"]
    env = {**cli_env(), "PYTHONWARNINGS": "ignore"}
    probe = lambda: run_entry_point(*args, cwd=REPO, env=env, timeout=300, module="experiments.probe")
    done = probe()
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == str(out)
    assert {"probe.json", "probe_topk.csv", "probe.md", "probe.png", "tensorboard"} <= {p.name for p in out.iterdir()}
    again = probe()
    assert again.returncode == 2
    assert again.stderr.strip().splitlines() == [f"error: {out} already holds a probe; choose another directory"]
