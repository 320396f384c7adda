"""Evaluate a run's checkpoint in one process: ``python -m experiments.evaluate <run dir> [--split val]``.

Prints the metrics as JSON (e.g. ``val/nelbo``), to check a run's numbers or compare checkpoints.
"""

from __future__ import annotations

import json
import sys

from dlm_lightning.cli import OneLineArgumentParser
from dlm_lightning.errors import UserError
from dlm_lightning.evaluate import SPLITS, evaluate_run
from dlm_lightning.runs import CHECKPOINTS


def main(argv: list[str] | None = None) -> None:
    parser = OneLineArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run directory, or a checkpoint file inside one")
    parser.add_argument("--checkpoint", default="last", choices=CHECKPOINTS)
    parser.add_argument("--split", default="val", choices=SPLITS)
    args = parser.parse_args(argv)
    try:
        metrics = evaluate_run(args.run, args.checkpoint, args.split)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(metrics, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
