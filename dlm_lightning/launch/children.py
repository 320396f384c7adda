"""Lightning's script launcher, changed so that every extra rank re-runs the current Hydra *job*.

Lightning's own launcher starts ranks 1..N-1 by re-running ``sys.argv``. Under ``-m`` that is the whole
sweep: each child runs a sweep of its own into another directory, and its ``hydra.run.dir`` names the
sweep's run directory, not the job's. Here a child is started in single-run mode with exactly the job's
task overrides and ``hydra.run.dir`` set to the job's output directory, so all ranks of a job train one
configuration into one directory. ``end_children`` (called when the job ends, see ``launch.job``) reaps
them, so the next job of a sweep starts with no processes left over.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from typing import Any, Callable

from lightning.fabric.strategies.launchers.subprocess_script import _basic_subprocess_cmd
from lightning.fabric.utilities.distributed import _set_num_threads_if_needed
from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher

log = logging.getLogger(__name__)

# After a child dies, how long the job may take to end on its own (a gloo peer fails fast; an NCCL
# collective can hang) before this process is killed, as Lightning's own launcher does at once.
CHILD_FAILURE_GRACE_S = 60.0
# How long a finished job waits for its children to exit before killing them (after a failure they
# have failed too, or are stuck waiting for this rank).
CHILD_EXIT_WAIT_S = {True: 60.0, False: 2.0}

# The job directory goes to a child through the environment: its name holds any character an override
# value may hold, which the override grammar would have to parse.
JOB_DIR_ENV = "DLM_JOB_DIR"


class JobScriptLauncher(_SubprocessScriptLauncher):
    def launch(self, function: Callable, *args: Any, trainer=None, **kwargs: Any) -> Any:
        self.cluster_environment.validate_settings(num_devices=self.num_processes, num_nodes=self.num_nodes)
        if not self.cluster_environment.creates_processes_externally:
            self._start_children()
        _set_num_threads_if_needed(num_processes=self.num_processes)
        return function(*args, **kwargs)

    def _start_children(self) -> None:
        self._check_can_spawn_children()
        environment = self.cluster_environment
        os.environ["MASTER_ADDR"] = environment.main_address
        os.environ["MASTER_PORT"] = str(environment.main_port)
        os.environ["NODE_RANK"] = str(environment.node_rank())
        # LOCAL_RANK also tells this job's later launches (trainer.test after fit) that its ranks exist
        os.environ["LOCAL_RANK"] = str(environment.local_rank())
        os.environ["WORLD_SIZE"] = str(self.num_processes * self.num_nodes)
        for local_rank in range(1, self.num_processes):
            command, cwd, env = child_command(local_rank)
            self.procs.append(subprocess.Popen(command, env={**os.environ, **env, "LOCAL_RANK": str(local_rank)},
                                               cwd=cwd))
        _watch_children(self.procs)


def child_command(local_rank: int) -> tuple[list[str], str | None, dict[str, str]]:
    """The command line, working directory and extra environment that make a child run this job."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():  # plain script: Lightning's usual re-run of argv
        return list(_basic_subprocess_cmd()), None, {}
    hydra = HydraConfig.get()
    command = [*_entry_point(), *hydra.overrides.task, f"hydra.run.dir=${{oc.env:{JOB_DIR_ENV}}}",
               "hydra.output_subdir=null", f"hydra.job.name=rank{local_rank}"]
    return command, hydra.runtime.cwd, {JOB_DIR_ENV: hydra.runtime.output_dir}


def _entry_point() -> list[str]:
    """This program without its arguments: ``python -m <module>`` or ``python <script>``."""
    import __main__

    if getattr(__main__, "__spec__", None) is None:
        return [sys.executable, os.path.abspath(sys.argv[0])]
    return [sys.executable, "-m", __main__.__spec__.name]


class _ChildWatch(threading.Thread):
    """Kills this process when a child died and the job does not end within the grace period.

    Lightning's observer kills the main process as soon as a child fails, which under ``-m`` would end
    the whole sweep for one failed job; here the job normally fails on its own (its next collective
    raises) and is recorded, and the kill is only the last resort against a hang.
    """

    def __init__(self, procs: list[subprocess.Popen]):
        super().__init__(daemon=True, name="dlm-child-watch")
        self.procs, self.job_ended = procs, threading.Event()

    def run(self) -> None:
        while not self.job_ended.wait(1.0):
            if any(p.poll() not in (None, 0) for p in self.procs):
                if self.job_ended.wait(CHILD_FAILURE_GRACE_S):
                    return
                log.error("a DDP child process died and this job did not end within %.0f s; killing it",
                          CHILD_FAILURE_GRACE_S)
                _kill(self.procs)
                os.kill(os.getpid(), signal.SIGKILL)

    def end(self, succeeded: bool) -> None:
        self.job_ended.set()
        for proc in self.procs:
            try:
                proc.wait(timeout=CHILD_EXIT_WAIT_S[succeeded])
            except subprocess.TimeoutExpired:
                log.warning("DDP child %d did not exit; killing it", proc.pid)
        _kill(self.procs)


def _kill(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


_watch: _ChildWatch | None = None


def _watch_children(procs: list[subprocess.Popen]) -> None:
    global _watch
    _watch = _ChildWatch(procs)
    _watch.start()


def end_children(succeeded: bool) -> None:
    """Waits for (after a failure: kills) the children this process started for the current job."""
    global _watch
    if _watch is not None:
        _watch.end(succeeded)
        _watch = None
