"""Names of output directories (Hydra resolvers, registered in ``cli.register_resolvers``).

- ``${dlm.launch_stamp:}``: a timestamp, or torchrun's run id. Each torchrun worker composes its own
  Hydra config, so a timestamp would give every rank a directory of its own; torchrun hands all its
  workers one rendezvous id (random under ``--standalone``, the given ``--rdzv-id`` otherwise).
- sweep job directories: Hydra names them by all of a job's overrides, so every directory of a sweep
  would start with the same constant settings. ``name_jobs_by_grid`` excludes the overrides that do not
  sweep from the name, which keeps the grid values (``decoder=joint,schedule=adaptive,seed=1``);
  ``${dlm.job_dirname:...}`` still shortens a name longer than a file name may be (255 bytes).
"""

from __future__ import annotations

import hashlib
import os
from datetime import datetime

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from dlm_lightning.errors import UserError

MAX_DIRNAME_BYTES = 200


def timestamp() -> str:
    """The name of a new output directory: to the microsecond, so two runs never share one."""
    return datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")


def launch_stamp() -> str:
    run_id = os.environ.get("TORCHELASTIC_RUN_ID")
    if run_id is None:
        return timestamp()
    if run_id == "none":
        raise UserError("under torchrun every rank must write into one run directory: pass --standalone "
                        "or --rdzv-id=<id> to torchrun, or set hydra.run.dir (hydra.sweep.dir with -m)")
    return f"torchrun-{run_id}"


def job_dirname(override_dirname: str) -> str:
    """The name unchanged when it fits, else its leading overrides and a hash of the whole name."""
    if len(override_dirname.encode()) <= MAX_DIRNAME_BYTES:
        return override_dirname
    digest = "etc-" + hashlib.sha256(override_dirname.encode()).hexdigest()[:10]
    kept: list[str] = []
    for item in override_dirname.split(","):
        if len(",".join([*kept, item, digest]).encode()) > MAX_DIRNAME_BYTES:
            break
        kept.append(item)
    return ",".join([*kept, digest])


def name_jobs_by_grid(argv: list[str]) -> list[str]:
    """Under ``-m``, adds a Hydra override that leaves the non-sweeping overrides out of job directory
    names (each job's ``overrides.yaml`` still lists them all)."""
    exclude_key = "hydra.job.config.override_dirname.exclude_keys"
    if not {"-m", "--multirun"} & set(argv) or any(a.startswith(exclude_key) for a in argv):
        return argv
    parser, constant, last = OverridesParser.create(), [], 0
    for index, arg in enumerate(argv[1:], start=1):
        if arg.startswith("-"):
            continue
        try:
            override = parser.parse_override(arg)
        except HydraException:  # not an override (a flag's value), or a bad one Hydra will report
            continue
        last = index
        if not (override.is_sweep_override() or override.is_hydra_override()):
            constant.append(override.key_or_group)
    if not constant:
        return argv
    # next to the other overrides: argparse takes them as one run of positional arguments
    return [*argv[: last + 1], f"{exclude_key}=[{','.join(['resume', *constant])}]", *argv[last + 1:]]
