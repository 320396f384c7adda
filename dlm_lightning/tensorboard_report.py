"""Writes a finished report into TensorBoard: its scalars, its Markdown text and its saved figure."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable


def write_tensorboard_report(directory: Path, prefix: str, scalars: Iterable[tuple[str, float, int]], text: str,
                 png: Path) -> None:
    """``scalars`` are (tag, value, step); the text and figure go under ``<prefix>/report`` and
    ``<prefix>/figure``. The figure is the saved PNG, not a second rendering (drawing is slow)."""
    import matplotlib.image
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(directory))
    try:
        for tag, value, step in scalars:
            writer.add_scalar(tag, value, global_step=step)
        writer.add_text(f"{prefix}/report", text)
        writer.add_image(f"{prefix}/figure", matplotlib.image.imread(png)[..., :3], dataformats="HWC")
    finally:
        writer.close()
