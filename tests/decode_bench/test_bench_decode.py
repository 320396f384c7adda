"""The decoding benchmark: its settings grid, its measurements on a tiny model, and the entry point."""

import json
from pathlib import Path

import pytest
import torch

from dlm_lightning.build import build
from dlm_lightning.decode_bench.measure import answer_lengths, measure, summarise
from dlm_lightning.decode_bench.report import SUMMARY_KEYS
from dlm_lightning.decode_bench.settings import Setting, build_decoders, grid
from dlm_lightning.errors import ConfigError
from dlm_lightning.run.layout import LAST_CHECKPOINT
from dlm_lightning.run.load import LoadedRun
from suite_helpers import save_run


def test_answer_lengths_count_tokens_before_the_first_eos():
    answers = torch.tensor([[5, 6, 3, 3], [3, 3, 3, 3], [5, 6, 7, 8], [5, 3, 6, 3]])
    assert answer_lengths(answers, eos_id=3).tolist() == [2, 0, 4, 1]


def test_the_grid_adds_the_uncached_reference_of_every_setting():
    settings = grid([2], ["dual"], threshold_k=4, refresh=[2], refresh_k=1)
    assert settings == [Setting("marginal", 1, "none"), Setting("threshold", 4, "none"), Setting("marginal", 2, "none"),
                        Setting("marginal", 2, "dual"), Setting("threshold", 4, "dual"),
                        Setting("marginal", 1, "dual", 2)]
    assert Setting("marginal", 1, "dual", 2).label == "marginal k=1 dual refresh 2"
    with pytest.raises(ConfigError, match="caches=.* is invalid: each one of none, prefix, dual"):
        grid([1], ["full"], None, [], 1)
    # random order in place of low confidence, in the k rows and the refresh rows alike
    assert grid([2], ["dual"], None, [2], 1, block_decoder="random") == [
        Setting("random", 1, "none"), Setting("random", 2, "none"), Setting("random", 2, "dual"),
        Setting("random", 1, "dual", 2)]
    with pytest.raises(ConfigError, match="^block_decoder='joint' is invalid: one of marginal, random$"):
        grid([1], ["none"], None, [], 1, block_decoder="joint")


def test_decoder_overrides_reach_every_row_but_not_the_keys_the_rows_set(tiny_module):
    settings = [Setting("marginal", 2, "none"), Setting("threshold", 4, "dual")]
    built = build_decoders(settings, 8, 40, tiny_module.denoiser, ["decoder.sample_length=true"])
    assert all(decoder.sample_length for decoder in built.values())
    assert [d.cache for d in built.values()] == ["none", "dual"]  # each row keeps its own setting
    assert not any(d.sample_length for d in build_decoders(settings, 8, 40, tiny_module.denoiser).values())
    for bad in ("decoder.cache=dual", "decoder.block_length=4", "sample_length=true"):
        with pytest.raises(ConfigError, match=f"^decoder_overrides='{bad}' is invalid: decoder.KEY=VALUE items"):
            build_decoders(settings, 8, 40, tiny_module.denoiser, [bad])


def tiny_run(module, cfg, tmp_path: Path) -> LoadedRun:
    datamodule = build(cfg, "data")
    return LoadedRun(tmp_path, tmp_path / LAST_CHECKPOINT, cfg, datamodule.data_info(), module.eval(), datamodule)


def test_measure_reports_speed_and_quality_per_setting_and_seed(tiny_module, compose, tiny_overrides, tmp_path):
    run = tiny_run(tiny_module, compose(tiny_overrides), tmp_path)
    settings = [Setting("marginal", 2, "none"), Setting("marginal", 2, "dual"), Setting("marginal", 2, "dual", 1)]
    built = build_decoders(settings, 8, run.info.answer_length, run.module.denoiser)
    rows = measure(run, built, samples=4, batch_size=4, seeds=[0, 1])
    assert len(rows) == 6
    by = {(r["label"], r["seed"]): r for r in rows}
    for seed in (0, 1):
        none, dual, every = (by[s.label, seed] for s in settings)
        assert none["agreement"] == none["same_answer"] == 1.0 and none["speedup"] == 1.0
        # refreshing at every step is the uncached decode: same tokens and quality
        assert every["agreement"] == 1.0 and every["validity"] == none["validity"]
        assert every["mean_length"] == none["mean_length"]
        for row in (none, dual, every):
            assert row["nfe"] == 20 and row["answer_length"] == 40 and 0 <= row["validity"] <= 1
            assert 0 <= row["mean_length"] <= 40 and row["tokens_per_s"] > 0
    summary = summarise(rows, SUMMARY_KEYS)
    assert len(summary) == 3 and summary[0]["seeds"] == [0, 1]
    values = [by[settings[1].label, s]["tokens_per_s"] for s in (0, 1)]
    assert summary[1]["tokens_per_s"] == pytest.approx(sum(values) / 2)


def test_the_entry_point_writes_a_new_directory_and_refuses_a_used_one(tiny_module, compose, tiny_overrides,
                                                                          tmp_path, capsys, monkeypatch):
    from experiments.bench_decode import main

    run_dir = save_run(tiny_module, compose(tiny_overrides), tmp_path / "run")
    monkeypatch.chdir(tmp_path)
    args = ["lengths=[40]", f'run=["40={run_dir}"]', "ks=[4]", "caches=[none,prefix]",
            "threshold_k=0", "refresh=[]", "block_length=8", "samples=4", "batch_size=4", "seeds=[0]", "out=bench"]
    main(args)
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == "bench"
    saved = json.loads((tmp_path / "bench" / "bench_decode.json").read_text())
    assert [r["label"] for r in saved["summary"]] == ["marginal k=4 none", "marginal k=4 prefix"]
    assert "| 40 | cpu | marginal k=4 prefix |" in (tmp_path / "bench" / "bench_decode.md").read_text()
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert "out=bench is not an empty directory" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args[:-1], "out=other", "lengths=[64]", f'run=["64={run_dir}"]'])
    assert "its answer length is 40, not 64" in capsys.readouterr().err
    assert not (tmp_path / "other").exists() or not any((tmp_path / "other").iterdir())


def test_an_untrained_run_has_the_requested_answer_length_and_its_corpus():
    from dlm_lightning.decode_bench.untrained import untrained_run
    from experiments.bench_decode import training_overrides

    overrides = training_overrides(64, 95, 32, 4)
    assert "data.max_free_sentences=10" in overrides and "trainer.max_steps=95" in overrides
    assert "data.train_size=320" in overrides  # ten validations: epochs of ceil(95 / 10) = 10 steps of 32
    run = untrained_run([*overrides, "model=tiny"])
    assert run.info.answer_length == 64 and run.info.seq_len == run.info.prompt_length + 64
    assert not run.module.training and run.module.decoder.cache == "dual"
