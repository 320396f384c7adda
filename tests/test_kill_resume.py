"""Kill-and-resume matrix on the real entry point: a run SIGKILLed during a training step, during
validation, while a checkpoint is written, after training, during test/sampling, and inside an epoch
with mid-epoch validation, then resumed, ends exactly as the uninterrupted run: every metric but the
timings, the samples, and the one best checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from suite_helpers import REPO, cli_env, run_entry_point

pytestmark = pytest.mark.long  # real processes or many trainings: scheduled first under xdist

# 4 training batches per epoch, 2 epochs, one validation batch, one test batch
BASE = ("model=tiny", "trainer.max_epochs=2", "data.train_size=128", "data.val_size=32", "data.test_size=32",
        "data.batch_size=32", "data.eval_batch_size=32", "callbacks.progress=null", "trainer.log_every_n_steps=1",
        "callbacks.lr_monitor=null", "callbacks.throughput=null")
MID_EPOCH = ("trainer.val_check_interval=0.5",)  # validations (and checkpoints) after batches 2 and 4
CASES = {  # name: (extra overrides, hook, n-th call of the hook that kills)
    "training_step": ((), "on_train_batch_start", 6),  # epoch 2, its second batch
    "validation": ((), "on_validation_batch_start", 2),  # epoch 2's validation
    "checkpoint_write": ((), "on_save_checkpoint", 3),  # epoch 2's first checkpoint file
    "after_training": ((), "on_fit_end", 1),
    "test_sampling": ((), "on_test_batch_start", 1),
    "mid_epoch_validation": (MID_EPOCH, "on_train_batch_start", 8),  # resumes from the step-6 checkpoint
}
TIMING_KEYS = ("tokens_per_s",)


def _env() -> dict[str, str]:
    env = cli_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "tests"), env.get("PYTHONPATH")]))
    return env


def _run(args, cwd: Path) -> subprocess.CompletedProcess:
    return run_entry_point(*args, cwd=cwd, env=_env(), timeout=600)


def _only_run(cwd: Path) -> Path:
    (run_dir,) = (cwd / "outputs" / "runs").iterdir()
    return run_dir


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill_matrix")
    jobs = {"baseline": (BASE, root / "baseline"), "baseline_mid": ((*BASE, *MID_EPOCH), root / "baseline_mid")}
    for name, (extra, hook, after) in CASES.items():
        jobs[name] = ((*BASE, *extra, f"+callbacks.kill._target_=kill_points.KillOnce",
                       f"+callbacks.kill.hook={hook}", f"+callbacks.kill.after={after}"), root / name)
    for _, cwd in jobs.values():
        cwd.mkdir()
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = dict(zip(jobs, pool.map(lambda job: _run(*job), jobs.values())))
        # a user deleted the tokenizer of one killed run: the resume writes it again
        shutil.rmtree(_only_run(root / "after_training") / "tokenizer", ignore_errors=True)
        resumed = dict(zip(CASES, pool.map(lambda name: _run((f"resume={_only_run(root / name)}",), root / name),
                                           CASES)))
    return root, first, resumed


def _comparable(run_dir: Path) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {k: v for k, v in metrics.items()
            if k.startswith(("val/", "test/", "sample/")) and not k.endswith(TIMING_KEYS)} | \
        {"global_step": metrics["global_step"]}


@pytest.mark.parametrize("case", list(CASES))
def test_a_killed_run_resumes_to_the_uninterrupted_result(matrix, case):
    root, first, resumed = matrix
    baseline = "baseline_mid" if CASES[case][0] else "baseline"
    assert first[baseline].returncode == 0, first[baseline].stderr[-2000:]
    assert first[case].returncode == -9, f"the kill did not happen: {first[case].stderr[-2000:]}"
    assert resumed[case].returncode == 0, resumed[case].stderr[-2000:]
    want, got = _only_run(root / baseline), _only_run(root / case)
    assert _comparable(got) == _comparable(want)
    assert (got / "samples.jsonl").read_text() == (want / "samples.jsonl").read_text()
    # save_top_k=1: exactly one best file, the same epoch and step as the uninterrupted run's
    assert [p.name for p in (got / "checkpoints").glob("best-*.ckpt")] == \
        [p.name for p in (want / "checkpoints").glob("best-*.ckpt")]
    assert not list((got / "checkpoints").glob(".*partial"))
    assert (got / "tokenizer" / "tokenizer.json").exists()
