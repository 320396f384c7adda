"""The frequency-collapse probe: ``python -m experiments.probe run=<run dir> | hf_model=<name or path>``.

Writes probe.json, probe_topk.csv, probe.md, probe.png and tensorboard/ into a new directory under
outputs/probes/ and prints that directory as the last line. See dlm_lightning/configs/probe.yaml for the options.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from dlm_lightning.cli import CONFIG_DIR, check_or_exit, exit_on_user_error, register_resolvers, remove_unclaimed
from dlm_lightning.probe.main import probe

register_resolvers()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="probe")
def _main(cfg: DictConfig) -> None:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    with exit_on_user_error(cleanup=lambda: remove_unclaimed(out_dir)):
        report = probe(cfg, out_dir)
    for note in report.get("notes", []):  # caps applied, statistics skipped: also in probe.md
        print(f"note: {note}", file=sys.stderr)
    print(out_dir)


def main() -> None:
    check_or_exit(sys.argv[1:], "probe")
    _main()


if __name__ == "__main__":
    main()
