"""The jobs of a sweep directory: each job's overrides, final metrics or error."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from dlm_lightning.errors import UserError
from dlm_lightning.run.layout import CONFIG_FILE, ERROR_FILE, METRICS_FILE, OVERRIDES_FILE

OK, FAILED, UNFINISHED = "ok", "failed", "unfinished"


@dataclass
class Job:
    name: str  # the job directory relative to the sweep directory (Hydra names it by its overrides)
    path: Path
    status: str
    overrides: dict[str, object] = field(default_factory=dict)  # key -> value (int/float/bool/str)
    metrics: dict[str, object] = field(default_factory=dict)
    error: str = ""


def collect_jobs(sweep_dir: Path) -> list[Job]:
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise UserError(f"{sweep_dir}: no such sweep directory")
    markers = (CONFIG_FILE, METRICS_FILE, ERROR_FILE, OVERRIDES_FILE)
    dirs = sorted({p.parent for name in markers for p in sweep_dir.rglob(name)})
    jobs = [_job(d, sweep_dir) for d in dirs]
    if not jobs:
        raise UserError(f"{sweep_dir}: no job directories (with {METRICS_FILE} or {ERROR_FILE}) under it")
    return jobs


def _job(path: Path, sweep_dir: Path) -> Job:
    job = Job(name=str(path.relative_to(sweep_dir)), path=path, status=UNFINISHED,
              overrides=_overrides(path / OVERRIDES_FILE))
    if (path / ERROR_FILE).exists():
        job.status, job.error = FAILED, (path / ERROR_FILE).read_text().splitlines()[0]
    elif (path / METRICS_FILE).exists():
        job.status, job.metrics = OK, json.loads((path / METRICS_FILE).read_text())
    return job


def _overrides(path: Path) -> dict[str, object]:
    if not path.exists():
        return {}
    parsed = OverridesParser.create().parse_overrides(list(OmegaConf.load(path)))
    values = {}
    for override in parsed:
        if override.is_delete():
            continue
        value = override.value()
        values[override.key_or_group] = value if isinstance(value, (int, float, bool, str)) else \
            override.get_value_element_as_str()
    return values
