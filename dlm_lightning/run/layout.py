"""File names inside a run directory (the layout is documented in ``run.experiment``)."""

from pathlib import Path

CONFIG_FILE, METRICS_FILE, SAMPLES_FILE = "config.yaml", "metrics.json", "samples.jsonl"
OVERRIDES_FILE, PROVENANCE_FILE, LOG_FILE = "overrides.yaml", "provenance.json", "run.log"
TOKENIZER_DIR = "tokenizer"
ERROR_FILE, RANKS_DIR = "error.txt", "ranks"  # a failed job's error; what each DDP rank trained
CHECKPOINT_DIR = Path("checkpoints")
LAST_CHECKPOINT = CHECKPOINT_DIR / "last.ckpt"


def unused_output_dir(out: Path | None, kind: str) -> Path:
    """``out``, or ``outputs/<kind>/<time>``, checked to hold nothing (earlier results are never
    overwritten) but not created: the caller creates it once it has results, so a refused or failed
    job leaves nothing behind."""
    from dlm_lightning.errors import RunDirError
    from dlm_lightning.launch.names import timestamp

    out = out or Path("outputs") / kind / timestamp()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunDirError(f"out={out} is not an empty directory; choose a new one (earlier results are "
                          f"never overwritten)")
    return out
