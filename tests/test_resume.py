"""Resume: a run SIGKILLed inside epoch 2 and resumed ends with exactly the metrics and samples of an
uninterrupted run with the same seed; finished runs and resumes with other overrides are refused."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from suite_helpers import STEPS_PER_EPOCH

# Wall-clock throughput is the only metric that may differ between two identical runs.
TIMING_KEYS = ("tokens_per_s",)


def _comparable(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items()
            if k.startswith(("val/", "test/", "sample/")) and not k.endswith(TIMING_KEYS)}


def test_the_kill_landed_inside_epoch_two_after_the_first_checkpoint(cli_runs):
    assert cli_runs.kill_returncode == -9
    copy = cli_runs.killed_copy
    assert not (copy / "metrics.json").exists()
    checkpoint = torch.load(copy / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert (checkpoint["epoch"], checkpoint["global_step"]) == (0, STEPS_PER_EPOCH)
    assert STEPS_PER_EPOCH < max(cli_runs.kill_steps) < 2 * STEPS_PER_EPOCH


def test_resumed_run_finishes_in_its_own_directory(cli_runs):
    resumed = cli_runs.resumed
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.dir == cli_runs.killed_dir
    assert sorted(p.name for p in resumed.cwd.joinpath("outputs", "runs").iterdir()) == [cli_runs.killed_dir.name]
    assert (resumed.dir / "checkpoints" / "last.ckpt").exists()
    # the resumed process kept the saved config as it was
    assert (resumed.dir / "config.yaml").read_text() == (cli_runs.killed_copy / "config.yaml").read_text()


def test_resume_equals_an_uninterrupted_run(cli_runs):
    finished, resumed = cli_runs.finished, cli_runs.resumed
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = finished.metrics(), resumed.metrics()
    assert a["global_step"] == b["global_step"] == 2 * STEPS_PER_EPOCH
    assert {"val/nelbo", "test/nelbo", "sample/validity"} <= set(_comparable(a))
    assert _comparable(a) == _comparable(b)  # exact equality, every number
    assert (finished.dir / "samples.jsonl").read_text() == (resumed.dir / "samples.jsonl").read_text()


def test_resume_of_a_finished_run_is_refused(cli_runs, cli):
    run_dir = cli_runs.finished.dir
    before = (run_dir / "metrics.json").read_text()
    result = cli(f"resume={run_dir}")
    assert result.code == 2
    assert result.stderr_lines == [
        f"error: resume={run_dir}: that run already finished (metrics.json exists); start a new run"]
    assert (run_dir / "metrics.json").read_text() == before


def test_resume_with_other_overrides_is_refused(cli_runs, cli):
    run_dir = cli_runs.killed_copy
    result = cli(f"resume={run_dir}", "seed=1", "trainer.max_epochs=3")
    assert result.code == 2
    assert result.stderr_lines == [
        "error: resume takes no other overrides (got seed=1 trainer.max_epochs=3): "
        "a resumed run continues with its saved config"]
    assert not (run_dir / "metrics.json").exists()


def test_resume_of_a_directory_that_is_not_a_run_is_refused(cli, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli(f"resume={empty}")
    assert (result.code, result.stderr_lines) == (
        2, [f"error: resume={empty}: no config.yaml there, so it is not a run directory"])


def test_resume_before_the_first_checkpoint_is_refused(cli_runs, cli, tmp_path):
    early = tmp_path / "early"
    early.mkdir()
    (early / "config.yaml").write_text((cli_runs.killed_copy / "config.yaml").read_text())
    result = cli(f"resume={early}")
    assert (result.code, result.stderr_lines) == (
        2, [f"error: resume={early}: no checkpoints/last.ckpt (the run stopped before its first checkpoint); "
            f"start a new run"])


def _edited_copy(source, target, **changes):
    import shutil

    shutil.copytree(source, target)
    cfg = OmegaConf.load(target / "config.yaml")
    for key, value in changes.items():
        OmegaConf.update(cfg, key, value)
    OmegaConf.save(cfg, target / "config.yaml")
    return target


def test_resume_into_another_model_shape_says_so(cli_runs, cli, tmp_path):
    run_dir = _edited_copy(cli_runs.killed_copy, tmp_path / "wider", **{"model.d_model": 64})
    result = cli(f"resume={run_dir}")
    assert result.code == 2
    assert result.stderr_lines[-1] == (
        "error: checkpoint model mismatch at denoiser.backbone.blocks.0.mlp.0.bias: checkpoint has shape [64], "
        "this model has [128] (None = absent)")
    assert not (run_dir / "metrics.json").exists()


def test_resume_onto_other_data_says_so(cli_runs, cli, tmp_path):
    run_dir = _edited_copy(cli_runs.killed_copy, tmp_path / "longer", **{"data.answer_length": 48})
    result = cli(f"resume={run_dir}")
    assert result.code == 2
    assert result.stderr_lines[-1] == (
        "error: checkpoint data mismatch: it was trained with seq_len=58, this run has seq_len=66")


# ---- checkpoint signatures (what resume relies on), in process ----------------------------------------
def _signed_checkpoint(module) -> dict:
    checkpoint = {}
    module.on_save_checkpoint(checkpoint)
    return checkpoint


def test_checkpoint_from_another_vocabulary_says_so(tiny_module):
    from dlm_lightning.data import corpus
    from dlm_lightning.data.info import hash_vocab
    from dlm_lightning.errors import CheckpointMismatch

    checkpoint = _signed_checkpoint(tiny_module)
    tiny_module.on_load_checkpoint(checkpoint)  # its own checkpoint loads
    ours = checkpoint["dlm_signature"]["data"]["vocab_hash"]
    swapped = list(corpus.VOCABULARY)
    swapped[-1], swapped[-2] = swapped[-2], swapped[-1]  # same size, two words trade ids
    theirs = hash_vocab({word: i for i, word in enumerate(swapped)})
    checkpoint["dlm_signature"]["data"]["vocab_hash"] = theirs
    with pytest.raises(CheckpointMismatch) as error:
        tiny_module.on_load_checkpoint(checkpoint)
    assert str(error.value) == (f"checkpoint data mismatch: it was trained with vocab_hash={theirs!r}, "
                                f"this run has vocab_hash={ours!r}")

    checkpoint = _signed_checkpoint(tiny_module)
    checkpoint["dlm_signature"]["data"]["vocab_size"] = 30000
    with pytest.raises(CheckpointMismatch, match=r"^checkpoint data mismatch: it was trained with "
                                                 rf"vocab_size=30000, this run has vocab_size={len(corpus.VOCABULARY)}$"):
        tiny_module.on_load_checkpoint(checkpoint)


def test_checkpoint_without_a_signature_says_so(tiny_module):
    from dlm_lightning.errors import CheckpointMismatch

    with pytest.raises(CheckpointMismatch, match="^checkpoint has no dlm-lightning signature"):
        tiny_module.on_load_checkpoint({"state_dict": tiny_module.state_dict()})


def test_a_run_directory_in_use_is_refused(cli_runs, cli, tmp_path):
    import fcntl
    import os
    import shutil

    run_dir = shutil.copytree(cli_runs.killed_copy, tmp_path / "run")
    before = sorted(p.name for p in run_dir.rglob("*"))
    holder = os.open(run_dir, os.O_RDONLY)  # as the process still training in it holds it
    try:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = cli(f"resume={run_dir}")
    finally:
        os.close(holder)
    assert result.code == 2
    assert result.stderr_lines == [f"error: {run_dir} is in use by another process (a run still training, or "
                                   f"another resume of it); wait for it to end"]
    assert sorted(p.name for p in run_dir.rglob("*")) == before
