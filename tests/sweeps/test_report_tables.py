"""The sweep report on hand-made job directories: exact mean ± std, best marks, failures, plots, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from dlm_lightning.errors import UserError
from dlm_lightning.report.plots import indexed_families
from dlm_lightning.report.sweep_report import write_sweep_report
from experiments.report import main as report_main


def make_job(sweep: Path, overrides: list[str], metrics: dict | None = None, error: str | None = None) -> Path:
    job = sweep / ",".join(overrides).replace("/", "_")
    job.mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), job / "overrides.yaml")
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))
    if error is not None:
        (job / "error.txt").write_text(error + "\nTraceback ...\n")
    return job


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """schedule x decoder x seed, with val/nelbo = base + seed and one failed job."""
    base = {("uniform", "marginal"): 2.0, ("uniform", "joint"): 2.5, ("adaptive", "marginal"): 1.0}
    for (schedule, decoder), nelbo in base.items():
        for seed in (0, 2):
            make_job(tmp_path, ["model=tiny", f"schedule={schedule}", f"decoder={decoder}", f"seed={seed}"],
                     {"val/nelbo": nelbo + seed, "sample/validity": 0.5 + 0.1 * seed, "sample/nfe": 40,
                      "val/position/nelbo/d00-04": 1.0 + seed, "val/position/nelbo/d05-09": 3.0,
                      "schedule": schedule, "seed": seed})
    make_job(tmp_path, ["model=tiny", "schedule=adaptive", "decoder=joint", "seed=0"],
             error="RuntimeError: boom | at step 3")
    return tmp_path


def test_report_has_one_row_per_job_and_mean_std_per_cell(sweep: Path):
    write_sweep_report(sweep)
    rows = list(csv.DictReader((sweep / "results.csv").open()))
    assert len(rows) == 7
    assert sorted(r["status"] for r in rows) == ["failed"] + ["ok"] * 6
    failed = next(r for r in rows if r["status"] == "failed")
    assert failed["error"] == "RuntimeError: boom | at step 3" and failed["val/nelbo"] == ""

    text = (sweep / "results.md").read_text()
    # the grid is the overrides that vary, minus the seed; model=tiny is constant
    assert "| `schedule` | `decoder` | n | val/nelbo | sample/validity | sample/nfe |" in text
    # seeds 0 and 2: nelbo = base + {0, 2} -> mean base + 1, sample std sqrt(2) = 1.414
    # (validity ties in every cell, so none is marked best)
    assert "| uniform | marginal | 2 | 3 ± 1.4 | 0.6 ± 0.14 | 40 ± 0 |" in text
    assert "| uniform | joint | 2 | 3.5 ± 1.4 | 0.6 ± 0.14 | 40 ± 0 |" in text
    assert "| adaptive | marginal | 2 | **2 ± 1.4** | 0.6 ± 0.14 | 40 ± 0 |" in text  # lowest NELBO
    # the failed job is listed with its error's first line (the table separator escaped)
    assert "## Failed or unfinished jobs (1)" in text
    assert "| `schedule=adaptive, decoder=joint, seed=0` | failed | RuntimeError: boom / at step 3 |" in text


def test_report_plots_and_tensorboard_hparams(sweep: Path):
    write_sweep_report(sweep)
    for name in ("val_nelbo.png", "sample_validity.png", "curve_val_position_nelbo.png"):
        assert (sweep / name).stat().st_size > 1000
    runs = [p for p in (sweep / "hparams").iterdir() if list(p.glob("events.out.tfevents*"))]
    assert len(runs) == 6  # finished jobs only
    write_sweep_report(sweep)  # a second report replaces the first, never appends
    assert len(list((sweep / "hparams").iterdir())) == 6


def test_numeric_axes_get_a_line_plot(tmp_path: Path):
    for k in (1, 2, 4):
        for seed in (0, 1):
            make_job(tmp_path, [f"decoder.tokens_per_step={k}", f"seed={seed}"], {"sample/validity": 1 / k})
    write_sweep_report(tmp_path)
    assert (tmp_path / "sample_validity_vs_decoder_tokens_per_step.png").exists()
    text = (tmp_path / "results.md").read_text()
    assert "| 1 | 2 | **1 ± 0** |" in text and "| 4 | 2 | 0.25 ± 0 |" in text  # the highest validity is best


def test_indexed_metric_families():
    families = indexed_families(["val/position/nelbo/d05-09", "val/position/nelbo/d00-04",
                                 "val/position/accuracy/d00-04", "sample/validity", "val/nelbo"])
    assert families == {"val/position/nelbo/*": [(0, "d00-04", "val/position/nelbo/d00-04"),
                                                 (5, "d05-09", "val/position/nelbo/d05-09")]}


def test_report_errors_are_one_line(tmp_path: Path, capsys):
    with pytest.raises(UserError, match="no job directories"):
        write_sweep_report(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        report_main([f"sweep_dir={tmp_path / 'missing'}"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'missing'}: no such sweep directory"
