"""Lightning's DDP and FSDP strategies with the job-aware launcher (see ``launch.children``).

Use them through ``trainer=ddp`` / ``trainer=fsdp``. Everything else is Lightning's: where processes are
created externally (torchrun, SLURM) no launcher starts children, and ``ddp_spawn``-style start methods
keep Lightning's multiprocessing launcher, which does not re-run the script.
"""

from __future__ import annotations

from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy
from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher

from dlm_lightning.launch.children import JobScriptLauncher


class _JobLaunching:
    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        if type(self._launcher) is _SubprocessScriptLauncher:
            self._launcher = JobScriptLauncher(self.cluster_environment, self.num_processes, self.num_nodes)


class JobDDPStrategy(_JobLaunching, DDPStrategy):
    """DistributedDataParallel whose extra ranks re-run the current Hydra job."""


class JobFSDPStrategy(_JobLaunching, FSDPStrategy):
    """Fully sharded data parallel whose extra ranks re-run the current Hydra job."""
