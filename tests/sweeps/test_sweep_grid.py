"""A 2 schedules x 2 decoders x 2 seeds sweep through the real entry point, and the report it ends with."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from sweep_helpers import FAST

pytestmark = pytest.mark.long  # real processes or many trainings: scheduled first under xdist

TINY = [*FAST, "data.train_size=32"]  # one training batch
GRID = ["+schedule=uniform,adaptive", "decoder=marginal,joint", "head=dependency", "seed=0,1"]


def test_grid_sweep_writes_one_directory_per_job_and_a_mean_std_report(tmp_path: Path, run_cli):
    result = run_cli("-m", *TINY, *GRID, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    (sweep,) = (tmp_path / "outputs" / "sweeps").iterdir()
    assert result.stdout.strip().splitlines()[-1] == str(sweep)  # printed last, as a run prints its dir

    rows = list(csv.DictReader((sweep / "results.csv").open()))
    assert len(rows) == 8 and {r["status"] for r in rows} == {"ok"}
    assert {(r["schedule"], r["decoder"], r["seed"]) for r in rows} == \
        {(s, d, seed) for s in ("uniform", "adaptive") for d in ("marginal", "joint") for seed in ("0", "1")}
    for row in rows:  # each job's directory is named by its grid values and holds the run of its overrides
        assert row["job"] == f"decoder={row['decoder']},schedule={row['schedule']},seed={row['seed']}"
        saved = OmegaConf.load(sweep / row["job"] / "config.yaml")
        assert (saved.choices.schedule, saved.choices.decoder, str(saved.seed)) == \
            (row["schedule"], row["decoder"], row["seed"])

    text = (sweep / "results.md").read_text()
    assert "| `schedule` | `decoder` | n | val/nelbo |" in text
    for schedule in ("uniform", "adaptive"):
        for decoder in ("marginal", "joint"):
            nelbo = [float(r["val/nelbo"]) for r in rows if (r["schedule"], r["decoder"]) == (schedule, decoder)]
            cell = f"{statistics.fmean(nelbo):.4g} ± {statistics.stdev(nelbo):.2g}"
            assert f"| {schedule} | {decoder} | 2 | {cell}" in text or f"| {schedule} | {decoder} | 2 | **{cell}**" in text
    assert (sweep / "val_nelbo.png").exists() and (sweep / "curve_val_position_nelbo.png").exists()
    assert len(list((sweep / "hparams").iterdir())) == 8
