"""Decode a run's test prompts with several decoder settings; validity beside the collapse metrics.

    python -m experiments.decode_table <run dir> [--settings "decoder=marginal decoder.block_length=40" ...]
        [--samples 256] [--seeds 0 1 2] [--out table.md]

Each setting is a string of decoder-group Hydra overrides; the first row is the data's own answers.
Prints the markdown table (mean ± std over decoding seeds) and writes it, with a JSON copy, to --out.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dlm_lightning.decode_table import DEFAULT_SETTINGS, decode_table, markdown
from dlm_lightning.errors import UserError
from dlm_lightning.run.load import load_run
from dlm_lightning.cli import OneLineArgumentParser, positive_int


def main(argv: list[str] | None = None) -> None:
    parser = OneLineArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run directory, or a checkpoint file inside one")
    parser.add_argument("--settings", nargs="+", default=list(DEFAULT_SETTINGS))
    parser.add_argument("--samples", type=positive_int, default=256, help="test prompts decoded per setting")
    parser.add_argument("--batch-size", type=positive_int, default=256)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="decoding seeds")
    parser.add_argument("--out", type=Path, help="write the table here (and a .json beside it)")
    args = parser.parse_args(argv)
    try:
        rows = decode_table(load_run(args.run), args.settings, args.samples, args.batch_size, args.seeds)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    text = markdown(rows)
    if args.out:
        args.out.write_text(text + "\n")
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    print(text)


if __name__ == "__main__":
    main()
