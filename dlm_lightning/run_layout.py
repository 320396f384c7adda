"""File names inside a run directory (the layout is documented in ``experiment``)."""

from pathlib import Path

CONFIG_FILE, METRICS_FILE, SAMPLES_FILE = "config.yaml", "metrics.json", "samples.jsonl"
OVERRIDES_FILE, PROVENANCE_FILE, LOG_FILE = "overrides.yaml", "provenance.json", "run.log"
TOKENIZER_DIR = "tokenizer"
ERROR_FILE, RANKS_DIR = "error.txt", "ranks"  # a failed job's error; what each DDP rank trained
CHECKPOINT_DIR = Path("checkpoints")
LAST_CHECKPOINT = CHECKPOINT_DIR / "last.ckpt"
