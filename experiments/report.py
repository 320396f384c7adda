"""Aggregate a sweep: ``python -m experiments.report <sweep dir> [--seed-key seed]``.

Writes results.csv (one row per job), results.md (mean ± std over seeds per grid cell, best marked,
failed jobs listed), comparison plots (*.png) and TensorBoard hparams (``<sweep dir>/hparams``) into the
sweep directory, and prints the path of results.md. Sweeps run it themselves when they end.
"""

from __future__ import annotations

import sys

from dlm_lightning.cli import OneLineArgumentParser
from dlm_lightning.errors import UserError
from dlm_lightning.report.sweep_report import write_sweep_report


def main(argv: list[str] | None = None) -> None:
    parser = OneLineArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", help="a directory made by python -m experiments.run -m ...")
    parser.add_argument("--seed-key", default="seed", help="the override averaged over (default: seed)")
    args = parser.parse_args(argv)
    try:
        print(write_sweep_report(args.sweep_dir, seed_key=args.seed_key))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
