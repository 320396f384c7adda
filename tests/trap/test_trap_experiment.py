"""experiments.trap end to end on a tiny run trained in-process with the dependency head."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from suite_helpers import compose_config

from dlm_lightning.run.experiment import new_run, run_experiment
from experiments import trap

pytestmark = pytest.mark.long  # real processes or many trainings: scheduled first under xdist

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
    trap.main([f"run_dirs=[{run_dir}]", "ks=[1,4]", "decoders=[marginal,joint]",
               "samples=20", "batch_size=8", "repeats=1", f"out={out}"])
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
    assert report["settings"]["runs"].startswith(f"{run_dir} (") and len(report["rows"]) == 4
    text = (out / "trap.md").read_text()
    assert "| decoder | tokens/step | seeds | NFE | validity | length bias | length TV | structure |" in text
    assert "| joint | 4 | 1 | 4.0 |" in text and "validity per seed:" not in text  # one seed: no spread, no seed table
    assert (out / "trap.png").stat().st_size > 10_000
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))


def test_trap_refuses_to_write_over_earlier_results(run_dir, tmp_path, capsys):
    out = tmp_path / "used"
    out.mkdir()
    (out / "trap.csv").write_text("earlier\n")
    with pytest.raises(SystemExit) as exit_info:
        trap.main([f"run_dirs=[{run_dir}]", f"out={out}"])
    assert exit_info.value.code == 2
    assert f"error: out={out} is not an empty directory" in capsys.readouterr().err
    assert (out / "trap.csv").read_text() == "earlier\n"


def test_trap_names_the_missing_head(tmp_path, capsys):
    no_head = _train(tmp_path / "no_head", [o for o in TINY if o != "head=dependency"])
    with pytest.raises(SystemExit):
        trap.main([f"run_dirs=[{no_head}]", "ks=[2]", "decoders=[joint]", f"out={tmp_path / 't'}"])
    assert "train with head=dependency" in capsys.readouterr().err


def test_trap_rejects_more_samples_than_the_test_split(run_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        trap.main([f"run_dirs=[{run_dir}]", "samples=33", f"out={tmp_path / 't'}"])
    assert capsys.readouterr().err.strip() == \
        "error: samples=33 is invalid: must be between 1 and the test split's 32"


@pytest.fixture(scope="module")
def seed_one_run(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("trap_seed1") / "run", [*TINY, "seed=1"])


def test_seeds_are_an_axis_per_seed_rows_and_mean_with_spread(run_dir, seed_one_run, tmp_path, capsys):
    out = tmp_path / "trap"
    trap.main([f"run_dirs=[{run_dir},{seed_one_run}]", "ks=[1,4]", "decoders=[marginal,joint]",
               "samples=16", "batch_size=16", "repeats=1", "gap_ks=[]", f"out={out}"])
    rows = list(csv.DictReader((out / "trap.csv").open()))
    assert sorted((int(r["seed"]), r["decoder"], int(r["tokens_per_step"])) for r in rows) == \
        sorted((s, d, k) for s in (0, 1) for d in ("marginal", "joint") for k in (1, 4))
    report = json.loads((out / "trap.json").read_text())
    for cell in report["cells"]:
        per_seed = [r["validity"] for r in report["rows"]
                    if (r["decoder"], r["tokens_per_step"]) == (cell["decoder"], cell["tokens_per_step"])]
        assert cell["seeds"] == ["0", "1"] and cell["validity"]["n"] == 2
        assert cell["validity"]["mean"] == pytest.approx(sum(per_seed) / 2)
        assert cell["validity"]["std"] == pytest.approx(abs(per_seed[0] - per_seed[1]) / 2 ** 0.5)
    # k = 1: the joint decoder is the marginal decoder on every seed
    by = {(r["seed"], r["decoder"], r["tokens_per_step"]): r for r in report["rows"]}
    assert all(by[s, "joint", 1]["validity"] == by[s, "marginal", 1]["validity"] for s in (0, 1))
    text = (out / "trap.md").read_text()
    assert "over 2 seed(s) (0, 1" in text and "validity per seed:" in text
    assert "| seed | marginal k=1 | joint k=1 | marginal k=4 | joint k=4 |" in text
    assert "joint/marginal invalid per seed" in capsys.readouterr().err


def test_decode_seeds_are_replicates_of_decoding_one_run(run_dir, tmp_path):
    out = tmp_path / "trap"
    trap.main([f"run_dirs=[{run_dir}]", "ks=[2]", "decoders=[marginal]", "samples=16", "batch_size=16",
               "repeats=1", "gap_ks=[]", "decode_seeds=[3,4]", f"out={out}"])
    report = json.loads((out / "trap.json").read_text())
    assert [(r["seed"], r["decode_seed"]) for r in report["rows"]] == [(0, 3), (0, 4)]
    assert report["cells"][0]["seeds"] == ["0/3", "0/4"]
    assert "| seed | marginal k=2 |" in (out / "trap.md").read_text()


@pytest.mark.parametrize("extra, message", [
    (["seeds=[0,1]"], "seeds trains new runs; with run_dirs each run's own seed is used"),
    (['train_overrides=["seed=3"]'], "give training seeds with seeds=[...], not as a seed= override"),
])
def test_seed_arguments_that_contradict_are_refused(run_dir, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exit_info:
        trap.main([f"out={tmp_path / 't'}", f"run_dirs=[{run_dir}]", *extra])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_runs_of_one_seed_or_of_another_config_are_refused(run_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        trap.main([f"run_dirs=[{run_dir},{run_dir}]", f"out={tmp_path / 't'}"])
    assert "were both trained with seed 0" in capsys.readouterr().err
    other = _train(tmp_path / "other", [*TINY, "seed=2", "module.optimizer.lr=0.001"])
    with pytest.raises(SystemExit):
        trap.main([f"run_dirs=[{run_dir},{other}]", f"out={tmp_path / 't'}"])
    assert f"run_dirs: {other} was trained with another config than {run_dir}" in capsys.readouterr().err


def test_the_headline_compares_every_decoder_with_the_marginal_one_per_seed():
    from dlm_lightning.trap.report import summary

    def row(seed, decoder, k, invalid, cost=1.0):
        return {"seed": seed, "decoder": decoder, "tokens_per_step": k, "validity": 1 - invalid,
                "invalid": invalid, "step_cost_vs_marginal": cost}

    rows = [row(0, "marginal", 1, 0.0), row(1, "marginal", 1, 0.1),
            row(0, "marginal", 4, 0.8), row(1, "marginal", 4, 0.5),
            row(0, "joint", 4, 0.2, 1.1), row(1, "joint", 4, 0.2, 1.3),
            row(0, "joint_rank", 4, 0.08, 1.2), row(1, "joint_rank", 4, 0.05, 1.2)]
    joint, ranked = summary(rows)
    assert joint.startswith("at 4 tokens/step: invalid 0.650 ± 0.212 (marginal) -> 0.200 ± 0.000 (joint); "
                            "joint/marginal invalid per seed 0.25, 0.40 (worst 0.40); validity 0.800 ± 0.000 (joint, 4/step) "
                            "against 0.950 ± 0.071 (marginal, 1/step); per-step cost 1.20 ± 0.14x")
    assert "joint_rank/marginal invalid per seed 0.10, 0.10 (worst 0.10)" in ranked
    assert summary([r for r in rows if r["decoder"] != "marginal"]) == []  # no baseline, no headline
