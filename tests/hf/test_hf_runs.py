"""Suite runs with a Hugging Face backbone: export round trip, loading without data, probe, trap, generate."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from suite_helpers import REPO, compose_config

from dlm_lightning.run.experiment import new_run, run_experiment

pytestmark = pytest.mark.long  # real processes or many trainings: scheduled first under xdist

SMALL = ["trainer.max_epochs=1", "data.train_size=128", "data.val_size=32", "data.test_size=16",
         "data.batch_size=32", "data.eval_batch_size=32", "callbacks.progress=null", "callbacks.throughput=null",
         "trainer.precision=32-true", "head=dependency"]
PROMPT = "[BOS] he lives in rome . we like golf . where does he live ? [SEP]"


def train(path: Path, overrides: list[str]) -> Path:
    cfg = compose_config([*SMALL, *overrides])
    cfg = new_run(path, cfg, {"schedule": "uniform", "decoder": "marginal", "model": "hf", "data": "corpus",
                              "head": "dependency"})
    run_experiment(cfg, path)
    return path


@pytest.fixture(scope="module")
def bert_run(models, tmp_path_factory):
    torch.manual_seed(0)
    return train(tmp_path_factory.mktemp("runs") / "bert", ["model=hf", f"model.name_or_path={models['bert']}"])


@pytest.fixture(scope="module")
def remote_run(models, tmp_path_factory):
    """A frozen remote-code backbone: only the dependency head trained."""
    torch.manual_seed(0)
    return train(tmp_path_factory.mktemp("runs") / "remote",
                 ["model=hf", f"model.name_or_path={models['remote']}", "model.trust_remote_code=true",
                  "model.train_mode=frozen"])


def batch_for(info, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, info.vocab_size, (3, info.seq_len), generator=g)
    x[:, info.prompt_length:][torch.rand(3, info.answer_length, generator=g) < 0.5] = info.mask_id
    return x, torch.tensor([0.2, 0.5, 0.9])


@pytest.mark.parametrize("which", ["bert_run", "remote_run"])
def test_export_round_trip_gives_identical_log_probs(which, request, tmp_path):
    from dlm_lightning.export import DLMForMaskedDiffusion, export_run
    from dlm_lightning.run.load import load_run

    run_dir = request.getfixturevalue(which)
    loaded = load_run(run_dir)
    out = export_run(run_dir, tmp_path / "export")
    for name in ("model.safetensors", "config.json", "tokenizer.json", "modeling_dlm.py", "README.md",
                 "backbone/config.json"):
        assert (out / name).exists(), name
    card = (out / "README.md").read_text()
    assert "library_name: dlm-lightning" in card and "val/nelbo" in card and "_target_" in card
    model = DLMForMaskedDiffusion.from_pretrained(out)
    x, t = batch_for(loaded.info)
    with torch.no_grad():
        expected = loaded.module.denoiser(x, t).log_probs
        got = model(x, t).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert torch.equal(model.info.token_counts, loaded.info.token_counts)
    for name, tensor in loaded.module.state_dict().items():
        assert torch.equal(model.diffusion.state_dict()[name], tensor), name


FRESH = """
import sys, torch
from transformers import AutoModel
model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True)
x, t, expected = torch.load(sys.argv[2])
with torch.no_grad():
    same = torch.equal(model(x, t).logits, expected)
data_modules = [m for m in sys.modules if m.startswith(("dlm_lightning.data.corpus_datamodule", "dlm_lightning.data.text", "datasets"))]
print(type(model).__name__, same, data_modules)
"""


def test_exported_model_loads_in_a_fresh_process_without_data(remote_run, tmp_path):
    from dlm_lightning.export import export_run
    from dlm_lightning.run.load import load_run

    loaded = load_run(remote_run)
    out = export_run(remote_run, tmp_path / "export")
    x, t = batch_for(loaded.info, seed=1)
    with torch.no_grad():
        torch.save((x, t, loaded.module.denoiser(x, t).log_probs), tmp_path / "batch.pt")
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", FRESH, str(out), str(tmp_path / "batch.pt")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "DLMForMaskedDiffusion True []"


def test_load_run_needs_no_data_module(bert_run, monkeypatch):
    import dlm_lightning.run.load as runs

    original = runs.build

    def no_data(cfg, group, **kwargs):
        assert group != "data", "load_run rebuilt the data module"
        return original(cfg, group, **kwargs)

    monkeypatch.setattr(runs, "build", no_data)
    loaded = runs.load_run(bert_run)
    assert loaded.info.checker is not None and loaded.info.rules  # the corpus checker travels by reference
    assert loaded.info.unigram().shape == (loaded.info.vocab_size,)
    monkeypatch.setattr(runs, "build", original)
    assert loaded.datamodule.sizes["test"] == 16  # built on first use, as the run had it


def test_probe_and_trap_run_on_an_hf_run(bert_run):
    from dlm_lightning.probe.compute import run_probe
    from dlm_lightning.probe.suite_model import SuiteModel
    from dlm_lightning.run.load import load_run
    from dlm_lightning.trap.measure import build_decoders, measure

    model = SuiteModel(str(bert_run))
    result = run_probe(model, ["he lives in rome . we like golf . where does he live ?"], n_masks=8,
                       unigram=model.training_unigram()[0])
    assert result.stats["kl"].shape == (1, 8) and (result.stats["kl"] >= 0).all()
    run = load_run(bert_run)
    rows = measure(run, build_decoders(["marginal", "joint"], [1, 4], run), samples=4, batch_size=4, seed=0, repeats=1)
    by_key = {(r["decoder"], r["tokens_per_step"]): r for r in rows}
    assert set(by_key) == {("marginal", 1), ("joint", 1), ("marginal", 4), ("joint", 4)}
    assert by_key["joint", 1]["validity"] == by_key["marginal", 1]["validity"]  # k = 1: the same samples
    assert all(0.0 <= r["validity"] <= 1.0 and r["nfe"] > 0 for r in rows)


def test_generate_api_records_one_state_per_denoiser_call(bert_run):
    from dlm_lightning.decoders.marginal import MarginalDecoder
    from dlm_lightning.generate import load_generator

    generator = load_generator(bert_run)
    decoder = MarginalDecoder(tokens_per_step=2, temperature=0.0)
    [result] = generator.generate([PROMPT], decoder, record_states=True)
    assert result.nfe == 20 and len(result.states) == 21
    masks = [state.split().count("[MASK]") for state in result.states]
    assert masks == list(range(40, -1, -2))  # two tokens committed per denoiser call
    again = generator.generate([PROMPT], decoder)[0]
    assert again.answer == result.answer and again.states == []


def run_generate(*args: str) -> tuple[int, str, str]:
    from hydra.core.global_hydra import GlobalHydra

    argv = sys.argv
    sys.argv = [str(REPO / "experiments" / "generate.py"), *args]
    code = 0
    try:
        runpy.run_module("experiments.generate", run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 0
    finally:
        sys.argv = argv
        GlobalHydra.instance().clear()
    return code


def test_generate_cli_decodes_from_a_run_an_export_and_an_hf_model(bert_run, models, tmp_path, capsys, monkeypatch):
    from dlm_lightning.export import export_run

    monkeypatch.chdir(tmp_path)
    export = export_run(bert_run, tmp_path / "export")
    outputs = {}
    for source in (bert_run, export):
        capsys.readouterr()
        assert run_generate(f"run={source}", f"prompt='{PROMPT}'", "decoder.temperature=0") == 0
        outputs[source] = capsys.readouterr().out
        assert "answer:" in outputs[source] and "(NFE 40)" in outputs[source]
    assert outputs[bert_run] == outputs[export]  # the exported model decodes exactly as the run
    capsys.readouterr()
    assert run_generate(f"hf_model={models['bert']}", "prompt='he likes golf'", "gen_length=8",
                        "decoder=joint") == 2  # an HF model not trained here has no dependency head
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: head=None is invalid")
    assert run_generate(f"hf_model={models['bert']}", "prompt='he likes golf'", "gen_length=8", "show_steps=true") == 0
    printed = capsys.readouterr().out
    assert "step 8:" in printed and "step 9:" not in printed and "(NFE 8)" in printed
    assert printed.count("[MASK]") == sum(range(1, 9))  # 8, 7, ..., 1 masks before the calls, 0 after
    assert run_generate(f"hf_model={models['bert']}", 'prompt=["he likes golf","she likes chess"]',
                        "gen_length=8") == 0  # a list of prompts under the one key
    assert capsys.readouterr().out.count("answer:") == 2


@pytest.mark.parametrize("args, message", [
    (["hf_model={gpt}", "prompt=hi"], "error: model="),
    (["hf_model={remote}", "hf.trust_remote_code=true", "prompt=hi"], "error: hf.mask_id=None is invalid: the tokenizer of"),
    (["prompt=hi"], "error: run=None is invalid: give exactly one of"),
    (["hf_model={gpt}", "prompt=[]"], "error: prompt=[] is invalid: give prompt="),
    (["run=/no/such/run", "prompt=hi"], "error: run=/no/such/run: no such file"),
])
def test_generate_bad_input_fails_in_one_line(models, args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = [a.format(**{k: str(v) for k, v in models.items()}) for a in args]
    capsys.readouterr()
    assert run_generate(*args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message), err
