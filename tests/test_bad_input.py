"""Bad input to every entry point: exit code 2, one line on stderr naming the key or file, and no new or
changed file under outputs/ (which holds a finished and an unfinished run, as a user's would).

Each case runs the entry point in this process (the ``entry`` fixture: runpy, the same code as a real
``python -m``); placeholders in the arguments are filled from the layout the ``workspace`` fixture makes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

RUN = "experiments.run"
TINY = ("model=tiny", "data.train_size=64", "data.val_size=32", "data.test_size=32", "data.batch_size=32")

# (entry point, arguments, text the one line must contain)
CASES = [
    # wrong types, caught by the targets' typed signatures
    (RUN, ("seed=abc",), "seed='abc'"),
    (RUN, ("seed=1.5",), "seed=1.5"),
    (RUN, ("module.optimizer.lr=abc",), "module.optimizer.lr='abc'"),
    (RUN, ("data.batch_size=1.5",), "data.batch_size=1.5"),
    (RUN, ("data.answer_length=abc",), "data.answer_length='abc'"),
    (RUN, ("schedule=info", "schedule.learnable=maybe"), "schedule.learnable='maybe'"),
    (RUN, ("reuse_training=maybe",), "reuse_training='maybe'"),
    (RUN, ("model.d_model=wide",), "model.d_model='wide'"),
    (RUN, ("decoder.tokens_per_step=2.5",), "decoder.tokens_per_step=2.5"),
    # values out of range
    (RUN, ("trainer.accumulate_grad_batches=0",), "trainer.accumulate_grad_batches=0"),
    (RUN, ("trainer.gradient_clip_val=-1",), "trainer.gradient_clip_val=-1"),
    (RUN, ("trainer.max_epochs=0",), "trainer.max_epochs=0"),
    (RUN, ("trainer.max_epochs=-1",), "trainer.max_steps"),
    (RUN, ("trainer.max_steps=-5",), "trainer.max_steps=-5"),
    (RUN, ("data.train_size=8",), "data.train_size=8"),
    (RUN, ("data.val_size=0",), "data.val_size=0"),
    (RUN, ("decoder.temperature=-1",), "decoder.temperature=-1"),
    (RUN, ("decoder.top_p=0",), "decoder.top_p=0"),
    (RUN, ("decoder.block_length=7",), "decoder.block_length=7"),
    (RUN, ("decoder.remasking=sideways",), "decoder.remasking='sideways'"),
    (RUN, ("decoder=joint",), "head"),
    (RUN, ("model.positions=absolute",), "model.positions='absolute'"),
    (RUN, ("model.attention=fast",), "model.attention='fast'"),
    (RUN, ("model.n_heads=3",), "model.n_heads=3"),
    (RUN, ("module.train_t_range=[0.5,0.2]",), "module.train_t_range"),
    (RUN, ("module.eval_decode_batches=-1",), "module.eval_decode_batches=-1"),
    # unknown options and keys
    (RUN, ("schedule=nope",), "schedule/nope"),
    (RUN, ("logger=nope",), "logger/nope"),
    (RUN, ("model.nope=1",), "model.nope"),
    (RUN, ("+decoder.nope=1",), "decoder.nope"),
    # resume
    (RUN, ("resume=",), "resume="),
    (RUN, ("resume={tmp}/nowhere",), "resume={tmp}/nowhere"),
    (RUN, ("resume={unfinished}/checkpoints/last.ckpt",), "is a file"),
    (RUN, ("-m", "resume={unfinished}"), "resume={unfinished}"),
    (RUN, ("resume={notarun}",), "config.yaml"),
    (RUN, ("resume={finished}",), "already finished"),
    (RUN, ("resume={unfinished}", "seed=3"), "resume takes no other overrides"),
    (RUN, ("resume={empty_ckpt}",), "last.ckpt is empty"),
    (RUN, ("resume={garbage_ckpt}",), "last.ckpt cannot be read"),
    (RUN, ("resume={truncated_ckpt}",), "last.ckpt cannot be read"),
    (RUN, ("resume={foreign_ckpt}",), "last.ckpt is not a dlm-lightning checkpoint"),
    (RUN, ("init_from={tmp}/nowhere",), "init_from='{tmp}/nowhere' is invalid"),
    (RUN, ("init_from={foreign_ckpt}",), "init_from={foreign_ckpt}: checkpoint"),
    # output directories
    (RUN, ("hydra.run.dir={finished}",), "already holds a run"),
    (RUN, ("hydra.run.dir={afile}",), "afile is a file"),
    (RUN, ("hydra.run.dir={afile}/run",), "afile is a file"),
    # data files
    (RUN, ("data=files", "data.source.data_files.train={tmp}/nowhere.txt"), "nowhere.txt"),
    (RUN, ("data=files", "data.source.data_files.train={empty_file}"), "empty.txt' is empty"),
    (RUN, ("data=files", "data.source.data_files.train={binary_file}"), "binary.txt' is not UTF-8"),
    (RUN, ("data=files", "data.source.path=json", "data.source.data_files.train={bad_jsonl}"),
     "bad.jsonl' line 3 is not valid JSON"),
    # evaluate
    ("experiments.evaluate", ("run={tmp}/nowhere",), "nowhere"),
    ("experiments.evaluate", ("run={notarun}",), "config.yaml"),
    ("experiments.evaluate", ("run={empty_ckpt}",), "last.ckpt is empty"),
    ("experiments.evaluate", ("run={garbage_ckpt}",), "last.ckpt cannot be read"),
    ("experiments.evaluate", ("run={finished}", "split=nope"), "split='nope'"),
    ("experiments.evaluate", ("run={finished}", "checkpoint=nope"), "checkpoint='nope'"),
    ("experiments.evaluate", ("run={finished}", "gap_ks=[two]"), "gap_ks=['two']"),
    ("experiments.evaluate", ("split=test",), "run=None"),
    ("experiments.evaluate", ("{finished}",), "{finished}"),
    # the trap experiment
    ("experiments.trap", ("run_dirs=[{finished}]", "decoders=[nope]"), "decoders='nope'"),
    ("experiments.trap", ("run_dirs=[{finished}]", "ks=[0]"), "ks=[0]"),
    ("experiments.trap", ("run_dirs=[{finished}]", "ks=4"), "ks=4"),
    ("experiments.trap", ("run_dirs=[{finished}]", "samples=0"), "samples=0"),
    ("experiments.trap", ("run_dirs=[{finished}]", "samples=abc"), "samples='abc'"),
    ("experiments.trap", ("run_dirs=[{finished}]", "batch_size=-2"), "batch_size=-2"),
    ("experiments.trap", ("run_dirs=[{finished}]", "mauve=maybe"), "mauve='maybe'"),
    ("experiments.trap", ("run_dirs=[{finished}]", "nope=1"), "nope"),
    ("experiments.trap", ("run_dirs=[{tmp}/nowhere]",), "nowhere"),
    ("experiments.trap", ("run_dirs=[{empty_ckpt}]",), "last.ckpt is empty"),
    ("experiments.trap", ("run_dirs=[{finished}]", "out={finished}"), "out={finished}"),
    # the probe
    ("experiments.probe", ("run={tmp}/nowhere",), "nowhere"),
    ("experiments.probe", ("run={garbage_ckpt}",), "last.ckpt cannot be read"),
    ("experiments.probe", ("nope=1",), "nope"),
    ("experiments.probe", ("prompts=nope",), "prompts/nope"),
    # benchmarks and the sweep report
    ("experiments.bench", ("threads=0",), "threads=0"),
    ("experiments.bench", ("steps=0",), "steps=0"),
    ("experiments.bench", ("steps=2.5",), "steps=2.5"),
    ("experiments.bench", ("dataset=nope",), "dataset='nope'"),
    ("experiments.bench", ("sizes=[tiny,huge]",), "sizes=['tiny', 'huge'] is invalid: unknown size ['huge']"),
    ("experiments.bench", ("data=corpus",), "data"),
    ("experiments.bench_schedules", ("model_name=nope",), "model_name='nope'"),
    ("experiments.bench_schedules", ("threads=0",), "threads=0"),
    ("experiments.bench_schedules", ("precision=fp16",), "precision='fp16'"),
    ("experiments.bench_schedules", ("repeats=many",), "repeats='many'"),
    ("experiments.report", ("sweep_dir={tmp}/nowhere",), "nowhere"),
    ("experiments.report", ("sweep_dir={notarun}",), "no job directories"),
    ("experiments.report", ("seed_key=seed",), "sweep_dir=None"),
    # generation, the decoding benchmark, the decoder table and the partial-state probe
    ("experiments.generate", ("run={tmp}/nowhere", "prompt=hello"), "nowhere"),
    ("experiments.generate", ("run={finished}",), "prompt"),
    ("experiments.generate", ("nope=1",), "nope"),
    ("experiments.generate", ("run={garbage_ckpt}", "prompt=hello"), "last.ckpt cannot be read"),
    ("experiments.bench_decode", ("samples=0",), "samples=0"),
    ("experiments.bench_decode", ("caches=[nope]",), "caches=['nope']"),
    ("experiments.bench_decode", ("precision=fp16",), "precision='fp16'"),
    ("experiments.bench_decode", ("train_steps=-1",), "train_steps=-1"),
    ("experiments.bench_decode", ("block_decoder=joint",), "block_decoder='joint'"),
    ("experiments.bench_decode", ('decoder_overrides=["decoder.cache=dual"]',), "decoder_overrides='decoder.cache=dual'"),
    ("experiments.bench_decode", ("lengths=[64]", 'run=["64={tmp}/nowhere"]'), "nowhere"),
    ("experiments.bench_decode", ("lengths=[64]", 'run=["{tmp}/nowhere"]'), "run="),
    ("experiments.bench_decode", ("out={finished}",), "out={finished}"),
    ("experiments.decode_table", ("run={tmp}/nowhere",), "nowhere"),
    ("experiments.decode_table", ("run={finished}", "samples=0"), "samples=0"),
    ("experiments.decode_table", ("run={finished}", "seeds=0"), "seeds=0"),
    ("experiments.decode_table", ("run={finished}", "settings=[decoder=nope]"), "settings=[decoder=nope]: "),
    ("experiments.decode_table", ('run={finished}', 'settings=["decoder=nope"]'), "settings: 'decoder=nope': "),
    ("experiments.probe_partial", ("run={finished}", 'decoder_overrides="decoder=joint decoder.nope=1"'),
     "decoder_overrides: 'decoder=joint decoder.nope=1': "),
    ("experiments.decode_table", ("samples=4",), "run=None"),
    ("experiments.probe_partial", ("run={tmp}/nowhere",), "nowhere"),
    ("experiments.probe_partial", ("run={empty_ckpt}",), "last.ckpt is empty"),
    ("experiments.probe_partial", ("run={finished}", "samples=-1"), "samples=-1"),
    ("experiments.probe_partial", ("run={finished}", "calls=[ten]"), "calls=['ten']"),
    ("experiments.probe_partial", ("run={finished}", "out={finished}"), "out={finished} is not empty"),
    ("experiments.probe_partial", ("run={finished}", "decoder=joint"), "decoder"),
]


def _fill(arg: str, places: dict[str, Path]) -> str:
    return arg.format(**{k: str(v) for k, v in places.items()})


def _snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root``; each file's size and modification time (a folder's time changes when a
    refused run's empty folder is removed from it, which leaves nothing behind)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def runs(cli_runs, tmp_path_factory) -> dict[str, Path]:
    """A finished run, an unfinished one, and unfinished ones whose last.ckpt is damaged."""
    root = tmp_path_factory.mktemp("bad_input_runs")
    runs = {"finished": cli_runs.finished.dir, "unfinished": cli_runs.killed_copy}
    damages = {"empty_ckpt": b"", "garbage_ckpt": b"not a checkpoint at all" * 10,
               "truncated_ckpt": (cli_runs.killed_copy / "checkpoints" / "last.ckpt").read_bytes()[:4000]}
    for name, content in damages.items():
        runs[name] = shutil.copytree(cli_runs.killed_copy, root / name)
        (runs[name] / "checkpoints" / "last.ckpt").write_bytes(content)
    runs["foreign_ckpt"] = shutil.copytree(cli_runs.killed_copy, root / "foreign_ckpt")
    torch.save({"weights": torch.zeros(2)}, runs["foreign_ckpt"] / "checkpoints" / "last.ckpt")
    return runs


@pytest.fixture
def workspace(tmp_path, runs) -> dict[str, Path]:
    """The test's working directory: outputs/runs/ holds copies of the runs; files of every kind beside."""
    places = {"tmp": tmp_path}
    for name, source in runs.items():
        places[name] = shutil.copytree(source, tmp_path / "outputs" / "runs" / name)
    (tmp_path / "notarun").mkdir()
    places["notarun"] = tmp_path / "notarun"
    places["afile"] = tmp_path / "afile"
    places["afile"].write_text("a file")
    places["empty_file"] = tmp_path / "empty.txt"
    places["empty_file"].write_text("")
    places["binary_file"] = tmp_path / "binary.txt"
    places["binary_file"].write_bytes(bytes(range(256)) * 4)
    places["bad_jsonl"] = tmp_path / "bad.jsonl"
    places["bad_jsonl"].write_text('{"text": "one"}\n{"text": "two"}\n{broken\n')
    return places


@pytest.mark.parametrize("module, args, named", CASES,
                         ids=[f"{m.split('.')[-1]}:{' '.join(a)}" for m, a, _ in CASES])
def test_bad_input_fails_in_one_line_and_writes_nothing(entry, workspace, module, args, named):
    before = _snapshot(workspace["tmp"] / "outputs")
    filled = [_fill(arg, workspace) for arg in args]
    if module == RUN and not any(a.startswith(("resume=", "-m")) for a in filled):
        filled = [*TINY, *filled]
    result = entry(module, *filled)
    assert result.code == 2, result.stderr[-2000:]
    assert len(result.stderr_lines) == 1, result.stderr
    assert result.stderr_lines[0].startswith("error: ")
    assert _fill(named, workspace) in result.stderr_lines[0]
    assert _snapshot(workspace["tmp"] / "outputs") == before


def test_there_are_at_least_sixty_cases_over_every_entry_point():
    entry_points = {p.stem for p in Path(__file__).parent.parent.joinpath("experiments").glob("*.py")} - {"__init__"}
    assert len(CASES) >= 60
    assert {m.split(".")[-1] for m, _, _ in CASES} == entry_points
