"""Fixtures shared by the whole suite (tests/ and its area subfolders).

Speed rules the fixtures follow: tiny configs (``TINY``), torch single-threaded in this process and in the
subprocesses (the tiny models gain nothing from a second thread, and two contending threads on a shared
2-core machine are several times slower), the CLI run in-process when a real process is not the point
(``cli``), the few real processes shared by the session (``cli_runs``), and every real process started
from the fork server, which has the imports done (``suite_helpers.start_entry_point``).
"""

from __future__ import annotations

import json
import logging
import os
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from suite_helpers import (CONFIG_DIR, REPO, RESUME_RUN, STEPS_PER_EPOCH, TINY,  # noqa: F401 (re-exported)
                           cli_env, compose_config, run_entry_point, start_entry_point, stop_fork_server)

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def compose():
    """compose(overrides, config_name="config", hydra=False) -> DictConfig, normalised like the CLI's argv."""
    return compose_config


@pytest.fixture(scope="session")
def tiny_overrides() -> list[str]:
    """The overrides of a tiny, fast main-job config (model=tiny, 256/64/64 documents, 1 epoch)."""
    return list(TINY)


@pytest.fixture
def tiny_cfg():
    """A fresh composed config of the main job with the tiny overrides."""
    return compose_config(TINY)


@pytest.fixture(scope="session")
def tiny_info():
    """The DataInfo of the default corpus (vocabulary, lengths, tokenizer, checker, unigram counts)."""
    from dlm_lightning.build import build

    return build(compose_config(TINY), "data").data_info()


@pytest.fixture
def tiny_module(tiny_info):
    """A fresh MaskedDiffusionLM of the tiny config, built through build_module (seeded, so reproducible)."""
    from dlm_lightning.build import build_module

    torch.manual_seed(0)
    return build_module(compose_config(TINY), tiny_info)


@pytest.fixture
def quiet_trainer(tmp_path):
    """quiet_trainer(**overrides) -> a CPU Lightning Trainer without logger, checkpoints, progress bar or summary."""
    import lightning as L

    def make(**overrides):
        options = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                       enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                       default_root_dir=str(tmp_path))
        options.update(overrides)
        return L.Trainer(**options)

    return make


# ---- the CLI ----------------------------------------------------------------------------------------
@dataclass
class CliResult:
    code: int  # the exit status (0 when the entry point returned normally)
    stdout: str
    stderr: str
    cwd: Path

    @property
    def stderr_lines(self) -> list[str]:
        return self.stderr.splitlines()

    @property
    def last_line(self) -> str:
        lines = self.stdout.strip().splitlines()
        return lines[-1] if lines else ""

    def run_dirs(self) -> list[Path]:
        """The run directories this working directory holds (outputs/runs/*), oldest first."""
        return sorted((self.cwd / "outputs" / "runs").glob("*"))


@pytest.fixture
def entry(tmp_path, monkeypatch, request):
    """entry(module, *args) -> CliResult: ``python -m <module> *args`` executed in this process (runpy),
    cwd=tmp_path."""
    import importlib

    from hydra.core.global_hydra import GlobalHydra

    # Imported before capsys starts: lightning and transformers give their loggers a handler bound to the
    # sys.stderr of their import, which must outlive this test's captured stream.
    importlib.import_module("experiments.run")
    capsys = request.getfixturevalue("capsys")
    monkeypatch.chdir(tmp_path)
    root, handlers, level = logging.getLogger(), logging.getLogger().handlers[:], logging.getLogger().level

    def run(module: str, *args: str) -> CliResult:
        importlib.import_module(module)
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", [str(REPO / (module.replace(".", "/") + ".py")), *args])
        code = 0
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        finally:
            GlobalHydra.instance().clear()  # others compose with initialize_config_dir, which refuses a live one
            root.handlers[:] = handlers  # Hydra's job logging points at this test's captured streams
            root.setLevel(level)
        out = capsys.readouterr()
        return CliResult(code, out.out, out.err, tmp_path)

    return run


@pytest.fixture
def cli(entry):
    """cli(*args) -> CliResult: ``python -m experiments.run *args`` executed in this process (runpy), cwd=tmp_path."""
    return lambda *args: entry("experiments.run", *args)


@pytest.fixture(scope="session")
def run_cli():
    """run_cli(*args, cwd, timeout=300) -> CompletedProcess of a real ``python -m experiments.run`` subprocess."""

    def run(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
        return run_entry_point(*args, cwd=cwd, timeout=timeout)

    return run


# ---- real runs shared by the session ----------------------------------------------------------------
RUN_TIMEOUT_S = 600


@dataclass
class Run:
    """One finished CLI process."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    cwd: Path

    @property
    def last_line(self) -> str:
        lines = self.stdout.strip().splitlines()
        return lines[-1] if lines else ""

    @property
    def dir(self) -> Path:
        return Path(self.last_line)

    def metrics(self) -> dict:
        return json.loads((self.dir / "metrics.json").read_text())


@dataclass
class CliRuns:
    finished: Run  # A: 2 epochs uninterrupted, started with +schedule=uniform
    killed_args: tuple[str, ...]  # B: the same run with schedule=uniform, SIGKILLed inside epoch 2
    killed_dir: Path  # B's run directory (then resumed in place)
    killed_copy: Path  # a copy of B's directory as the kill left it (unfinished, resumable)
    kill_returncode: int
    kill_steps: list[int]  # the train/loss steps B had logged when it was killed
    resumed: Run  # ``resume=<B's dir>``
    invalid: Run  # a real process given an invalid value (data.train_size=0)


def logged_steps(run_dir: Path, tag: str) -> list[int]:
    """The steps at which ``tag`` was written to the run's TensorBoard event files (readable while it runs)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    steps = []
    for path in sorted((run_dir / "tensorboard").glob("events.out.tfevents.*")):
        try:
            for event in EventFileLoader(str(path)).Load():
                if any(value.tag == tag for value in event.summary.value):
                    steps.append(event.step)
        except Exception:  # a record being written: read it on the next poll
            continue
    return steps


class _Process:
    """A CLI subprocess whose output goes to files (a full pipe would block it while others are polled)."""

    def __init__(self, args, cwd: Path, name: str):
        self.args, self.cwd = tuple(args), cwd
        self.out, self.err = cwd.parent / f"{name}.stdout", cwd.parent / f"{name}.stderr"
        self.proc = start_entry_point(args, cwd, self.out, self.err)

    def finish(self, timeout: float = RUN_TIMEOUT_S) -> Run:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return Run(self.args, self.proc.returncode, self.out.read_text(), self.err.read_text(), self.cwd)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class _BackgroundRuns:
    """Starts the session's real CLI processes and drives them from a thread while the other tests run:
    A and B and the invalid run at once; B killed inside epoch 2, copied, then resumed."""

    def __init__(self, root: Path):
        self.root, self.error, self.result = root, None, None
        cwd_a, self.cwd_b, cwd_c = root / "a", root / "b", root / "c"
        for cwd in (cwd_a, self.cwd_b, cwd_c):
            cwd.mkdir(parents=True)
        self.args_b = (*RESUME_RUN, "schedule=uniform")
        self.a = _Process((*RESUME_RUN, "+schedule=uniform"), cwd_a, "a")
        self.b = _Process(self.args_b, self.cwd_b, "b")
        self.c = _Process((*TINY, "data.train_size=0"), cwd_c, "c")
        self.resume: _Process | None = None
        self.thread = threading.Thread(target=self._drive, name="dlm-cli-runs", daemon=True)
        self.thread.start()

    def _drive(self) -> None:
        try:
            self.result = self._run()
        except BaseException as error:  # reported by the tests that wait for the runs
            self.error = error

    def _run(self) -> CliRuns:
        deadline, killed_dir, steps = time.monotonic() + RUN_TIMEOUT_S, None, []
        while time.monotonic() < deadline and self.b.proc.poll() is None:
            dirs = sorted((self.cwd_b / "outputs" / "runs").glob("*"))
            if dirs and (dirs[0] / "checkpoints" / "last.ckpt").exists():
                steps = logged_steps(dirs[0], "train/loss")
                if any(step > STEPS_PER_EPOCH + 1 for step in steps):
                    self.b.proc.send_signal(signal.SIGKILL)
                    killed_dir = dirs[0]
                    break
            time.sleep(0.05)
        killed = self.b.finish(timeout=60)
        if killed_dir is None:
            raise RuntimeError(f"run B was not killed inside epoch 2 (return code {killed.returncode}, "
                               f"logged steps {steps}):\n{killed.stderr[-3000:]}")
        copy = self.root / "killed_copy"
        shutil.copytree(killed_dir, copy)
        self.resume = _Process((f"resume={killed_dir}",), self.cwd_b, "resumed")
        return CliRuns(self.a.finish(), self.args_b, killed_dir, copy, killed.returncode, steps,
                       self.resume.finish(), self.c.finish())

    def wait(self) -> CliRuns:
        self.thread.join(timeout=3 * RUN_TIMEOUT_S)
        if self.error is not None:
            raise self.error
        assert self.result is not None, "the CLI runs did not finish"
        return self.result

    def stop(self) -> None:
        for process in (self.a, self.b, self.c, self.resume):
            if process is not None:
                process.stop()


_RUNS_KEY = pytest.StashKey[_BackgroundRuns]()


def _start_runs(config) -> _BackgroundRuns:
    if _RUNS_KEY not in config.stash:
        config.stash[_RUNS_KEY] = _BackgroundRuns(Path(tempfile.mkdtemp(prefix="dlm_cli_runs_")))
    return config.stash[_RUNS_KEY]


def _uses_cli_runs(item) -> bool:
    return "cli_runs" in getattr(item, "fixturenames", ())


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(session, config, items):
    """Under pytest-xdist every worker collects every test, and a worker builds every module- or
    session-scoped fixture its tests need. So each module is one group (its module fixtures are built
    once), and the tests that need ``cli_runs`` form one group that goes first: one worker runs them all
    (starting the runs when it reaches them) while the other keeps the cores busy."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        users = [item for item in items if _uses_cli_runs(item)]
        for item in items:
            group = "cli_runs" if item in users else item.path.relative_to(config.rootpath).as_posix()
            item.add_marker(pytest.mark.xdist_group(group))
        # the longest groups first, so that short ones fill the end and both workers finish together
        rest = [item for item in items if item not in users]
        items[:] = users + sorted(rest, key=lambda item: item.get_closest_marker("long") is None)


class _StartCliRunsEarly:
    @pytest.hookimpl(trylast=True)  # after -k / -m deselection
    def pytest_collection_modifyitems(self, session, config, items):
        """Without workers: when tests need ``cli_runs``, start the runs now and move those tests last, so
        the processes work while the other tests run (the session's wall time then barely grows)."""
        users = [item for item in items if _uses_cli_runs(item)]
        if not users or config.option.collectonly or os.environ.get("PYTEST_XDIST_WORKER"):
            return
        _start_runs(config)
        items[:] = [item for item in items if item not in users] + users


def pytest_configure(config):
    config.pluginmanager.register(_StartCliRunsEarly(), "dlm_start_cli_runs_early")


def pytest_sessionfinish(session, exitstatus):
    runs = session.config.stash.get(_RUNS_KEY, None)
    if runs is not None:
        runs.stop()
        shutil.rmtree(runs.root, ignore_errors=True)
    stop_fork_server()


@pytest.fixture(scope="session")
def cli_runs(request) -> CliRuns:
    """Real CLI runs shared by the session (in the background): finished, killed-then-resumed, and invalid."""
    return _start_runs(request.config).wait()
