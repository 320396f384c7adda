"""The run directory of a real CLI run: resolved config with choices, checkpoints, TensorBoard events,
metrics.json, samples.jsonl, the printed path; and directories are never shared or reused."""

from __future__ import annotations

import json
import math

import torch
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from suite_helpers import STEPS_PER_EPOCH
from dlm_lightning.data import corpus


def _events(run_dir):
    """(scalars: tag -> [(step, value)], tensor tags) over all event files of the run."""
    scalars, tensors = {}, set()
    for path in sorted((run_dir / "tensorboard").glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "tensors": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
        tensors.update(acc.Tags()["tensors"])
    return scalars, tensors


def test_last_stdout_line_is_the_new_run_directory(cli_runs):
    run = cli_runs.finished
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.dir.is_absolute() and run.dir.is_dir()
    assert run.dir.parent == run.cwd / "outputs" / "runs"
    assert [p.name for p in run.dir.parent.iterdir()] == [run.dir.name]


def test_config_yaml_is_resolved_and_names_every_choice(cli_runs):
    cfg = OmegaConf.load(cli_runs.finished.dir / "config.yaml")
    assert cfg.choices.schedule == "uniform" and cfg.choices.decoder == "marginal"
    assert cfg.choices.model == "tiny" and cfg.choices.data == "corpus"
    assert cfg.data.train_size == 1280 and cfg.trainer.max_epochs == 2
    assert cfg.data.seed == cfg.module.seed == cfg.seed == 0  # interpolations resolved
    assert "${" not in (cli_runs.finished.dir / "config.yaml").read_text()


def test_checkpoints_last_and_best(cli_runs):
    checkpoints = cli_runs.finished.dir / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        f"best-001-{2 * STEPS_PER_EPOCH:06d}.ckpt", "last.ckpt"]
    last = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 2 * STEPS_PER_EPOCH
    assert last["dlm_signature"]["data"]["vocab_size"] == len(corpus.VOCABULARY)
    assert last["dlm_signature"]["data"]["seq_len"] == 18 + 40


def test_tensorboard_scalars_text_and_hparams(cli_runs):
    run_dir = cli_runs.finished.dir
    scalars, tensors = _events(run_dir)
    assert len(scalars["train/loss"]) == 2 * STEPS_PER_EPOCH  # log_every_n_steps=1
    assert all(math.isfinite(v) for _, v in scalars["train/loss"])
    assert [step for step, _ in scalars["val/nelbo"]] == [STEPS_PER_EPOCH - 1, 2 * STEPS_PER_EPOCH - 1]
    lr_tags = [tag for tag in scalars if tag.startswith("lr-")]
    assert lr_tags and len(scalars[lr_tags[0]]) == 2 * STEPS_PER_EPOCH
    assert any(tag.startswith("train/") and "per_sec" in tag for tag in scalars)  # throughput
    assert "val/samples/text_summary" in tensors
    # what TensorBoard shows is what metrics.json reports
    metrics = cli_runs.finished.metrics()
    assert scalars["val/nelbo"][-1][1] == metrics["val/nelbo"]
    assert scalars["test/nelbo"][-1][1] == metrics["test/nelbo"]
    assert "d_model: 32" in (run_dir / "tensorboard" / "hparams.yaml").read_text()


def test_metrics_json(cli_runs):
    metrics = cli_runs.finished.metrics()
    for key in ("val/nelbo", "val/bpt", "val/ppl", "test/nelbo", "sample/validity", "sample/nfe",
                "sample/unigram_entropy", "sample/tokens_per_s", "schedule", "decoder",
                "sample/length/bias", "sample/length/tv", "sample/length/early_stop", "sample/diversity/distinct_2",
                "val/length/bias", "sample/profile/kl/d00-09"):
        assert key in metrics, key
    # the mean of paired differences is the difference of the means
    assert math.isclose(metrics["sample/length/bias"],
                        abs(metrics["sample/length/mean"] - metrics["sample/length/data_mean"]), abs_tol=1e-4)
    assert (metrics["schedule"], metrics["decoder"], metrics["seed"]) == ("uniform", "marginal", 0)
    assert metrics["global_step"] == 2 * STEPS_PER_EPOCH
    assert metrics["sample/nfe"] == 40  # one token per step over a 40-token answer
    assert math.isclose(metrics["val/bpt"], metrics["val/nelbo"] / math.log(2), rel_tol=1e-6)
    assert math.isclose(metrics["val/ppl"], math.exp(metrics["val/nelbo"]), rel_tol=1e-6)
    for rule in corpus.RULES:
        assert 0.0 <= metrics[f"sample/violation/{rule}"] <= 1.0


def test_samples_jsonl_one_checked_line_per_test_prompt(cli_runs):
    run_dir = cli_runs.finished.dir
    lines = (run_dir / "samples.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["index"] for r in records] == list(range(64))  # data.test_size=64, in index order
    generator = corpus.CorpusGenerator(seed=0, answer_length=40)
    for record in records:
        assert record["prompt"] == " ".join(generator.document("test", record["index"]).prompt)
        words = record["prompt"].split() + record["answer"].split()
        assert len(record["answer"].split()) == 40
        check = corpus.check(words)
        assert record["valid"] == check.valid
        assert record["violations"] == [list(v) for v in check.violations]
    validity = sum(r["valid"] for r in records) / len(records)
    assert cli_runs.finished.metrics()["sample/validity"] == validity
    assert not list(run_dir.glob("samples.rank*"))  # per-rank parts merged and removed


def test_tokenizer_is_saved_with_the_run(cli_runs):
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(cli_runs.finished.dir / "tokenizer"))
    assert tokenizer.get_vocab() == {word: i for i, word in enumerate(corpus.VOCABULARY)}
    assert tokenizer.mask_token == corpus.MASK and tokenizer.pad_token == corpus.PAD


def test_a_refused_run_leaves_no_directory_behind(cli, tiny_overrides):
    # every component is built before the directory is claimed: a refused config writes nothing
    first = cli(*tiny_overrides, "data.val_size=0")
    second = cli(*tiny_overrides, "data.train_size=8")  # smaller than one batch: would train nothing
    assert first.code == second.code == 2
    assert second.stderr_lines == ["error: data.train_size=8 is invalid: must be >= data.batch_size=32 "
                                   "(incomplete batches are dropped, so a smaller split trains nothing)"]
    assert second.run_dirs() == []


def test_a_directory_that_holds_a_run_is_refused(cli_runs, cli, tiny_overrides):
    run_dir = cli_runs.finished.dir
    before = {p: p.read_bytes() for p in (run_dir / "config.yaml", run_dir / "metrics.json")}
    result = cli(*tiny_overrides, f"hydra.run.dir={run_dir}")
    assert result.code == 2
    assert result.stderr_lines == [
        f"error: {run_dir} already holds a run; pass resume={run_dir} to continue it, or choose another directory"]
    assert all(p.read_bytes() == content for p, content in before.items())


def _hparams_plugin(run_dir):
    """(hyperparameter names, metric tags) declared by the HParams plugin data in the run's event files."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams import plugin_data_pb2

    names, metric_tags = set(), set()
    for path in sorted((run_dir / "tensorboard").glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name != "hparams":
                    continue
                data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                names.update(data.session_start_info.hparams.keys())
                metric_tags.update(info.name.tag for info in data.experiment.metric_infos)
    return names, metric_tags


def test_hparams_tab_shows_the_config_with_the_final_metrics(cli_runs):
    run_dir = cli_runs.finished.dir
    names, metric_tags = _hparams_plugin(run_dir)
    assert {"seed", "model/d_model", "schedule/_target_", "choices/decoder"} <= names  # flattened by the logger
    assert "final/val/nelbo" in metric_tags
    scalars, tensors = _events(run_dir)
    assert scalars["final/val/nelbo"] == [(0, cli_runs.finished.metrics()["val/nelbo"])]
    assert "test/samples/text_summary" in tensors


def test_run_log_holds_the_console_with_warnings_and_the_run_directory(cli_runs):
    run = cli_runs.finished
    log = (run.dir / "run.log").read_text()
    assert log.rstrip().splitlines()[-1] == str(run.dir)
    assert "GPU available: False" in log  # a Lightning logger record
    assert "log_every_n_steps" in log or "flops_per_batch" in log  # a warning (stderr)
    assert "\x1b[" not in log


def test_provenance_names_code_packages_and_command(cli_runs):
    record = json.loads((cli_runs.finished.dir / "provenance.json").read_text())
    assert record["command"][-len(cli_runs.finished.args) - 2:] == ["-m", "experiments.run", *cli_runs.finished.args]
    assert record["packages"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert record["git"] is None or len(record["git"]["commit"]) == 40 and isinstance(record["git"]["dirty"], bool)
