"""experiments.trap end to end on a tiny run trained in-process with the dependency head."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from suite_helpers import compose_config

from dlm_lightning.experiment import new_run, run_experiment
from experiments import trap

TINY = ["model=tiny", "head=dependency", "trainer.max_epochs=1", "data.train_size=64", "data.val_size=32",
        "data.test_size=32", "data.answer_length=16", "data.max_free_sentences=0", "data.batch_size=32",
        "data.eval_batch_size=32", "module.eval_decode_batches=0", "callbacks.progress=null",
        "callbacks.throughput=null", "trainer.precision=32-true"]


def _train(path: Path, overrides: list[str]) -> Path:
    cfg = compose_config(overrides)
    cfg = new_run(path, cfg, {"schedule": "uniform", "decoder": "marginal", "model": "tiny", "data": "corpus"})
    run_experiment(cfg, path)
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("trap") / "run", TINY)


def test_trap_writes_every_output_with_one_row_per_decoder_and_k(run_dir, tmp_path, capsys):
    out = tmp_path / "trap"
    trap.main(["--run-dir", str(run_dir), "--ks", "1", "4", "--decoders", "marginal", "joint",
               "--samples", "20", "--batch-size", "8", "--repeats", "1", "--out", str(out)])
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out)
    rows = list(csv.DictReader((out / "trap.csv").open()))
    assert sorted((r["decoder"], int(r["tokens_per_step"])) for r in rows) == \
        [("joint", 1), ("joint", 4), ("marginal", 1), ("marginal", 4)]
    for row in rows:
        k = int(row["tokens_per_step"])
        assert float(row["nfe"]) == 16 / k  # equal NFE for both decoders: answer length / k
        assert int(row["samples"]) == 20
        assert abs(float(row["validity"]) + float(row["invalid"]) - 1) < 1e-9
        assert 0.0 <= float(row["violation/structure"]) <= 1.0
    marginal = {int(r["tokens_per_step"]): r for r in rows if r["decoder"] == "marginal"}
    assert all(float(r["step_cost_vs_marginal"]) == 1.0 for r in marginal.values())  # its own baseline
    report = json.loads((out / "trap.json").read_text())
    assert report["settings"]["run"] == str(run_dir) and len(report["rows"]) == 4
    text = (out / "trap.md").read_text()
    assert "| decoder | tokens/step | NFE | validity | length bias | length TV | structure |" in text and "| joint | 4 | 4.0 |" in text
    assert (out / "trap.png").stat().st_size > 10_000
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))


def test_trap_refuses_to_write_over_earlier_results(run_dir, tmp_path, capsys):
    out = tmp_path / "used"
    out.mkdir()
    (out / "trap.csv").write_text("earlier\n")
    with pytest.raises(SystemExit) as exit_info:
        trap.main(["--run-dir", str(run_dir), "--out", str(out)])
    assert exit_info.value.code == 2
    assert f"error: --out {out} is not an empty directory" in capsys.readouterr().err
    assert (out / "trap.csv").read_text() == "earlier\n"


def test_trap_names_the_missing_head(tmp_path, capsys):
    no_head = _train(tmp_path / "no_head", [o for o in TINY if o != "head=dependency"])
    with pytest.raises(SystemExit):
        trap.main(["--run-dir", str(no_head), "--ks", "2", "--decoders", "joint", "--out", str(tmp_path / "t")])
    assert "train with head=dependency" in capsys.readouterr().err


def test_trap_rejects_more_samples_than_the_test_split(run_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        trap.main(["--run-dir", str(run_dir), "--samples", "33", "--out", str(tmp_path / "t")])
    assert capsys.readouterr().err.strip() == \
        "error: samples=33 is invalid: must be between 1 and the test split's 32"
