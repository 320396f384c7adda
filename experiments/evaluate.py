"""Evaluate a run's checkpoint in one process: ``python -m experiments.evaluate <run dir> [--split val]``.

Prints the metrics as JSON (e.g. ``val/nelbo``), to check a run's numbers or compare checkpoints.
With ``--gap-ks`` (a run with the dependency head) it adds the factorisation gap in nats per committed
token: ``<split>/gap/k_<k>`` and ``<split>/gap/distance_<d>`` (dlm_lightning/metrics/factorisation.py).
"""

from __future__ import annotations

import json
import sys

from dlm_lightning.cli import OneLineArgumentParser
from dlm_lightning.errors import UserError
from dlm_lightning.run.evaluate import SPLITS, evaluate_run
from dlm_lightning.run.load import CHECKPOINTS


def main(argv: list[str] | None = None) -> None:
    parser = OneLineArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run directory, or a checkpoint file inside one")
    parser.add_argument("--checkpoint", default="last", choices=CHECKPOINTS)
    parser.add_argument("--split", default="val", choices=SPLITS)
    parser.add_argument("--gap-ks", type=int, nargs="*", default=[], help="factorisation gap at these k")
    parser.add_argument("--gap-distances", type=int, nargs="*", default=[], help="... and these pair distances")
    parser.add_argument("--gap-samples", type=int, default=256, help="held-out rows for the gap")
    args = parser.parse_args(argv)
    try:
        metrics = evaluate_run(args.run, args.checkpoint, args.split)
        if args.gap_ks or args.gap_distances:
            metrics.update(gap_metrics(args))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(metrics, indent=2, sort_keys=True))


def gap_metrics(args) -> dict:
    from dlm_lightning.errors import require
    from dlm_lightning.run.load import load_run
    from dlm_lightning.trap.gap import measure_gap

    run = load_run(args.run, args.checkpoint)
    require(run.module.dependency_head is not None, "--gap-ks", args.gap_ks,
            "the factorisation gap needs a run trained with head=dependency")
    run.datamodule.dataset(args.split)  # settles the split's size
    samples = min(args.gap_samples, run.datamodule.sizes[args.split])
    rows = measure_gap(run, args.gap_ks, args.gap_distances, samples, 64, 0, args.split)
    return {f"{args.split}/gap/{r['by']}_{r['value']}": r["gap_nats_per_token"] for r in rows}


if __name__ == "__main__":
    main()
