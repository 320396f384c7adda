"""2-process DDP (gloo, CPU) through the real entry point, in a subprocess so pytest is not re-launched:
a single run, and a -m sweep whose middle job fails."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from dlm_lightning.run.evaluate import evaluate_run
from sweep_helpers import FAST

pytestmark = pytest.mark.long  # real processes or many trainings: scheduled first under xdist

# one training batch per rank; the 16 validation and test documents split 8 / 8 between the ranks
TINY = [*FAST, "data.train_size=64", "trainer=ddp", "trainer.devices=2"]


def run_ok(run_cli, cwd: Path, args: list[str]) -> subprocess.CompletedProcess:
    result = run_cli(*args, cwd=cwd, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def rank_records(job: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((job / "ranks").glob("rank*.json"))]


def test_ddp_run_shares_one_directory_and_its_synced_nelbo_equals_one_process(tmp_path: Path, run_cli):
    result = run_ok(run_cli, tmp_path, TINY)
    (run_dir,) = (tmp_path / "outputs" / "runs").iterdir()  # both ranks wrote into one directory
    assert result.stdout.strip().splitlines()[-1] == str(run_dir)
    ranks = rank_records(run_dir)
    assert [(r["rank"], r["world_size"]) for r in ranks] == [(0, 2), (1, 2)]
    assert ranks[0]["config_sha256"] == ranks[1]["config_sha256"]
    # every test document decoded exactly once across the two ranks
    samples = [json.loads(line)["index"] for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert samples == list(range(16))
    # the synced validation NELBO of the run equals this process evaluating its last checkpoint alone
    synced = json.loads((run_dir / "metrics.json").read_text())["val/nelbo"]
    alone = evaluate_run(run_dir, "last", "val")["val/nelbo"]
    assert alone == pytest.approx(synced, rel=1e-5)


def test_ddp_sweep_runs_each_job_on_both_ranks_in_one_sweep_directory(tmp_path: Path, run_cli):
    monitors = ["val/typo", "val/bpt"]  # val/typo: ModelCheckpoint fails at the first save
    run_ok(run_cli, tmp_path, ["-m", *TINY, f"callbacks.checkpoint.monitor={','.join(monitors)}"])
    assert not (tmp_path / "outputs" / "runs").exists()  # no rank ran a run (or sweep) of its own
    (sweep,) = (tmp_path / "outputs" / "sweeps").iterdir()
    jobs = {}
    for overrides_file in sweep.rglob("overrides.yaml"):
        overrides = list(OmegaConf.load(overrides_file))
        monitor = next(o for o in overrides if o.startswith("callbacks.checkpoint.monitor="))
        jobs[monitor.split("=", 1)[1]] = (overrides_file.parent, overrides)
    assert sorted(jobs) == sorted(monitors)

    failed, _ = jobs["val/typo"]
    assert (failed / "error.txt").read_text().startswith("MisconfigurationException: `ModelCheckpoint(monitor='val/typo')`")
    assert not (failed / "metrics.json").exists()

    job, overrides = jobs["val/bpt"]  # it ran after the failure: the process started clean
    assert (job / "metrics.json").exists()
    ranks = rank_records(job)
    assert [(r["rank"], r["world_size"]) for r in ranks] == [(0, 2), (1, 2)]
    assert all(r["overrides"] == overrides for r in ranks)  # each rank trained this job's overrides
    assert ranks[0]["config_sha256"] == ranks[1]["config_sha256"]
    for record in ranks[1:]:  # the child ranks are gone
        with pytest.raises(ProcessLookupError):
            os.kill(record["pid"], 0)

    rows = list(csv.DictReader((sweep / "results.csv").open()))  # the report ran at the end of the sweep
    assert sorted(r["status"] for r in rows) == ["failed", "ok"]
    assert "callbacks.checkpoint.monitor=val/typo" in (sweep / "results.md").read_text()
