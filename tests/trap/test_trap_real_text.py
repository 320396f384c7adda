"""The trap experiment and the run-level judge on real text: tiny local files, a suite-trained AR judge."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "data"))
from text_fixtures import documents  # noqa: E402

from dlm_lightning.run.experiment import new_run, run_experiment  # noqa: E402
from experiments import trap  # noqa: E402


@pytest.fixture(scope="module")
def runs(tmp_path_factory, compose):
    root = tmp_path_factory.mktemp("real_text")
    notes = root / "notes.txt"
    notes.write_text("\n".join(documents(160)) + "\n")
    base = ["model=tiny", "data=files", f"data.source.data_files.train={notes}", f"data.cache_dir={root / 'cache'}",
            "data.tokenizer.vocab_size=300", "data.layout.seq_len=16", "data.batch_size=16", "data.test_size=16",
            "data.val_size=16", "data.eval_batch_size=16", "data.train_size=64", "trainer.max_epochs=1",
            "callbacks.progress=null",
            "callbacks.throughput=null", "module.eval_decode_batches=0", "trainer.precision=32-true"]

    def train(name, overrides, choices):
        cfg = new_run(root / name, compose([*base, *overrides]), choices)
        return root / name, run_experiment(cfg, root / name)

    judge, _ = train("judge", ["objective=autoregressive"], {"objective": "autoregressive"})
    diffusion, metrics = train("diffusion", ["head=dependency", "judge=suite", f"judge.run={judge}"],
                               {"objective": "diffusion", "decoder": "marginal"})
    return judge, diffusion, metrics


def test_a_run_with_a_judge_reports_generative_perplexity_beside_entropy(runs):
    _, _, metrics = runs
    assert metrics["judge"].startswith("run ") and metrics["sample/gen_tokens"] > 0
    assert 1.0 < metrics["sample/gen_ppl"] < 300 * 2  # a trained judge of a 300-token vocabulary
    assert metrics["sample/gen_nll"] == pytest.approx(math.log(metrics["sample/gen_ppl"]))
    assert metrics["sample/unigram_entropy"] > 0 and "sample/validity" not in metrics


def test_the_trap_runs_on_real_text_with_a_judge_and_reports_the_gap(runs, tmp_path, capsys):
    judge, diffusion, _ = runs
    out = tmp_path / "trap"
    trap.main([f"run_dirs=[{diffusion}]", "ks=[1,2]", "decoders=[marginal,joint]", "samples=8",
               "batch_size=8", "repeats=1", f"judge_model={judge}", "gap_ks=[2,4]",
               "gap_distances=[1,3]", f"out={out}"])
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out)
    report = json.loads((out / "trap.json").read_text())
    rows = report["rows"]
    assert sorted((r["decoder"], r["tokens_per_step"]) for r in rows) == \
        [("joint", 1), ("joint", 2), ("marginal", 1), ("marginal", 2)]
    for row in rows:
        assert row["nfe"] == 16 / row["tokens_per_step"] and "validity" not in row
        assert 1.0 < row["gen_ppl"] < 600 and row["gen_tokens"] > 0 and row["unigram_entropy"] > 0
        assert 0.0 <= row["length/tv"] <= 1.0 and 0.0 <= row["diversity/distinct_2"] <= 1.0
    by_k = {(r["decoder"], r["tokens_per_step"]): r for r in rows}
    assert by_k["joint", 1]["gen_ppl"] == by_k["marginal", 1]["gen_ppl"]  # one token per step: the same samples
    assert [(g["by"], g["value"]) for g in report["gap"]] == [("distance", 1), ("distance", 3), ("k", 2), ("k", 4)]
    assert all(math.isfinite(g["gap_nats_per_token"]) and g["rows"] > 0 for g in report["gap"])
    text = (out / "trap.md").read_text()
    assert "| decoder | tokens/step | seeds | NFE | length bias | length TV | gen. ppl | judge tokens | unigram H (bits) |" in text
    assert "## Factorisation gap" in text and report["settings"]["judge"] == f"run {judge}"
    assert (out / "trap.png").stat().st_size > 10_000 and list((out / "tensorboard").glob("events.out.tfevents.*"))


def test_a_diffusion_run_is_refused_as_a_judge(runs, tmp_path, capsys):
    _, diffusion, _ = runs
    with pytest.raises(SystemExit) as exit_info:
        trap.main([f"run_dirs=[{diffusion}]", f"judge_model={diffusion}", f"out={tmp_path / 't'}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: judge run {diffusion} is a masked-diffusion run, not a causal language model: " \
                  f"train the judge with objective=autoregressive"


def test_evaluate_reports_the_gap_as_a_metric(runs, capsys):
    from experiments import evaluate

    _, diffusion, _ = runs
    evaluate.main([f"run={diffusion}", "gap_ks=[2]", "gap_distances=[1]"])
    metrics = json.loads(capsys.readouterr().out)
    assert {"val/gap/k_2", "val/gap/distance_1", "val/nelbo"} <= set(metrics)
    assert all(math.isfinite(metrics[k]) for k in ("val/gap/k_2", "val/gap/distance_1"))
