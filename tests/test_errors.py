"""Every user error of the main job: one line on stderr (`error: ...`), exit code 2, before any training.

Most cases run the entry point in this process (the `cli` fixture executes `python -m experiments.run`
with runpy: the same code, without 10 s of imports per case); one case checks a real process.
"""

from __future__ import annotations

import inspect

import pytest
import torch

from suite_helpers import CONFIG_DIR

pytestmark = pytest.mark.long  # real processes or many trainings: scheduled first under xdist


def _no_training_happened(result):
    for run_dir in result.run_dirs():
        assert not (run_dir / "checkpoints").exists()
        assert not (run_dir / "metrics.json").exists()


# ---- unknown options and keys ------------------------------------------------------------------------
@pytest.mark.parametrize("spelling", ["schedule", "+schedule"])
def test_unknown_group_option_lists_the_valid_ones(cli, spelling):
    result = cli(f"{spelling}=nope")
    assert result.code == 2
    options = sorted(p.stem for p in (CONFIG_DIR / "schedule").glob("*.yaml"))
    assert result.stderr_lines == [f"error: In 'config': Could not find 'schedule/nope' "
                                   f"Available options in 'schedule': {', '.join(options)}"]
    assert not result.run_dirs()


def test_unknown_key_without_plus_is_named_by_hydra(cli):
    result = cli("model.nope=1")
    assert result.code == 2
    assert result.stderr_lines == ["error: Could not override 'model.nope'. To append to your config use +model.nope=1"]
    assert not result.run_dirs()


def _parameters(target) -> str:
    params = inspect.signature(target).parameters.values()
    return ", ".join(p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))


@pytest.mark.parametrize("key, target", [
    ("model.nope", "dlm_lightning.models.transformer.Transformer"),
    ("data.nope", "dlm_lightning.data.corpus_datamodule.CorpusDataModule"),
    ("decoder.nope", None),
    ("module.nope", "dlm_lightning.module.MaskedDiffusionLM"),
    ("module.optimizer.nope", "torch.optim.AdamW"),
    ("callbacks.checkpoint.nope", "lightning.pytorch.callbacks.ModelCheckpoint"),
])
def test_unknown_key_names_the_valid_keys(cli, tiny_overrides, compose, key, target):
    from hydra.utils import get_class

    if target is None:  # the default decoder, whatever it is
        target = compose(tiny_overrides).decoder._target_
    result = cli(*tiny_overrides, f"+{key}=7")
    assert result.code == 2
    assert result.stderr_lines == [
        f"error: {key}=7 is invalid: unknown key; valid keys: {_parameters(get_class(target))}"]
    _no_training_happened(result)


# ---- invalid values ----------------------------------------------------------------------------------
INVALID_VALUES = [
    ("data.train_size=0", "data.train_size=0 is invalid: must be > 0"),
    ("data.val_size=-4", "data.val_size=-4 is invalid: must be > 0"),
    ("data.test_size=0", "data.test_size=0 is invalid: must be > 0"),
    ("data.batch_size=-3", "data.batch_size=-3 is invalid: must be > 0"),
    ("data.eval_batch_size=-1", "data.eval_batch_size=-1 is invalid: must be > 0"),
    ("data.num_workers=-1", "data.num_workers=-1 is invalid: must be >= 0"),
    ("data.answer_length=10",
     "data.answer_length=10 is invalid: must be >= 36 to hold the longest answer with max_free_sentences=5"),
    ("model.d_model=0", "model.d_model=0 is invalid: must be > 0"),
    ("model.n_layers=0", "model.n_layers=0 is invalid: must be > 0"),
    ("model.n_heads=3", "model.n_heads=3 is invalid: must divide d_model=32"),
    ("model.dropout=1.5", "model.dropout=1.5 is invalid: must be in [0, 1)"),
    ("module.optimizer.lr=0", "module.optimizer.lr=0 is invalid: must be > 0"),
    ("module.optimizer.lr=-0.001", "module.optimizer.lr=-0.001 is invalid: must be > 0"),
    ("module.lr_schedule.warmup_steps=-1", "module.lr_schedule.warmup_steps=-1 is invalid: must be >= 0"),
    ("decoder.tokens_per_step=0", "decoder.tokens_per_step=0 is invalid: must be an integer >= 1"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0 is invalid: must be an integer >= 1, or -1 for no limit"),
    ("trainer.max_steps=-5", "trainer.max_steps=-5 is invalid: must be an integer >= 1, or -1 for no limit"),
    ("trainer.max_epochs=-1",
     "trainer.max_epochs=-1 is invalid: no limit needs trainer.max_steps >= 1, or training never ends"),
]


@pytest.mark.parametrize("override, message", INVALID_VALUES, ids=[o for o, _ in INVALID_VALUES])
def test_invalid_value_fails_before_training_with_one_line(cli, tiny_overrides, override, message):
    result = cli(*tiny_overrides, override)
    assert result.code == 2
    assert result.stderr_lines == [f"error: {message}"]
    assert "Traceback" not in result.stdout
    _no_training_happened(result)
    assert not any((d / "tensorboard").exists() for d in result.run_dirs())


def test_invalid_value_in_a_real_process(cli_runs):
    run = cli_runs.invalid
    assert run.returncode == 2
    assert run.stderr.splitlines() == ["error: data.train_size=0 is invalid: must be > 0"]
    assert not run.stdout.strip()
    for run_dir in (run.cwd / "outputs" / "runs").glob("*"):
        assert not (run_dir / "checkpoints").exists()


# ---- failures during training --------------------------------------------------------------------------
def test_nan_loss_stops_the_run_naming_the_step(cli, tiny_overrides):
    result = cli(*tiny_overrides, "module.optimizer.lr=1e30")
    assert result.code == 2
    assert result.stderr_lines[-1] == "error: training loss is nan at step 1; run stopped"
    assert sum(line.startswith("error:") for line in result.stderr_lines) == 1
    assert "Traceback" not in result.stderr
    [run_dir] = result.run_dirs()
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "checkpoints").exists()


def test_a_non_finite_validation_bound_stops_the_run_before_any_checkpoint_sees_it(tiny_module):
    from dlm_lightning.errors import TrainingDiverged

    nelbo = tiny_module.val_nelbo
    nelbo.update(torch.tensor([float("nan"), 1.0]), torch.tensor([40.0, 40.0]))
    with pytest.raises(TrainingDiverged, match=r"^val/nelbo is nan at step 0; run stopped"):
        tiny_module._log_metrics("val", nelbo, None)
