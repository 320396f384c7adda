"""Re-running a sweep into its own directory continues it: finished jobs are kept byte for byte and
reported as finished, an unfinished job (killed after training, before metrics.json) is completed."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from sweep_helpers import FAST

pytestmark = pytest.mark.long  # real processes or many trainings: scheduled first under xdist

GRID = [*FAST, "data.train_size=32", "seed=0,1"]
KEPT = ("metrics.json", "samples.jsonl", "config.yaml", "checkpoints/last.ckpt")


def _files(sweep: Path) -> dict[str, bytes]:
    """The results a re-run must leave as they were: each job's files and the report's tables."""
    jobs = {str(p.relative_to(sweep)): p.read_bytes() for job in sorted(sweep.glob("seed=*"))
            for p in (job / name for name in KEPT)}
    return jobs | {name: (sweep / name).read_bytes() for name in ("results.csv", "results.md")}


def test_a_finished_sweep_is_kept_and_a_half_finished_one_is_completed(tmp_path, run_cli):
    finished = tmp_path / "finished"
    first = run_cli("-m", *GRID, f"hydra.sweep.dir={finished}", cwd=tmp_path, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    half = shutil.copytree(finished, tmp_path / "half")
    for name in ("metrics.json", "samples.jsonl"):  # seed=1 was killed after training
        (half / "seed=1" / name).unlink()
    before = _files(finished)

    again = run_cli("-m", *GRID, f"hydra.sweep.dir={finished}", cwd=tmp_path, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert _files(finished) == before
    assert not list(finished.glob("*/error.txt"))
    assert again.stdout.count("finished in an earlier launch of this sweep; kept as it is") == 2

    completed = run_cli("-m", *GRID, f"hydra.sweep.dir={half}", cwd=tmp_path, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    want = json.loads((finished / "seed=1" / "metrics.json").read_text())
    got = json.loads((half / "seed=1" / "metrics.json").read_text())
    assert {k: v for k, v in got.items() if k.startswith(("val/", "test/", "sample/")) and "per_s" not in k} == \
        {k: v for k, v in want.items() if k.startswith(("val/", "test/", "sample/")) and "per_s" not in k}
    assert (half / "seed=1" / "samples.jsonl").read_bytes() == (finished / "seed=1" / "samples.jsonl").read_bytes()
    rows = list(csv.DictReader((half / "results.csv").open()))
    assert [r["status"] for r in rows] == ["ok", "ok"]


def test_a_sweep_in_which_every_job_failed_exits_non_zero(tmp_path, run_cli):
    result = run_cli("-m", *FAST, "data.val_size=0", "seed=0,1", cwd=tmp_path, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: no job of the sweep finished")
    assert len(list(tmp_path.glob("outputs/sweeps/*/*/error.txt"))) == 2
