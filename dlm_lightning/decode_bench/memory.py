"""Peak memory of one piece of work: CUDA's allocator peak, or on a CPU the process's peak resident set."""

from __future__ import annotations

from pathlib import Path

import torch


def _resident_mib(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class PeakMemory:
    """``with PeakMemory(device) as m: ...``; then ``m.peak_mib`` (absolute) and ``m.extra_mib`` (above the
    memory in use when the block started). None where the platform cannot tell (CPU outside Linux)."""

    def __init__(self, device):
        self.cuda = torch.device(device).type == "cuda"
        self.peak_mib = self.extra_mib = None

    def __enter__(self) -> "PeakMemory":
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._before = torch.cuda.memory_allocated() / 2**20
        else:
            try:  # Linux: writing 5 resets the peak resident set size (VmHWM) to the current one
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                pass
            self._before = _resident_mib("VmRSS:")
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            self.peak_mib = torch.cuda.max_memory_allocated() / 2**20
        else:
            self.peak_mib = _resident_mib("VmHWM:")
        if self.peak_mib is not None and self._before is not None:
            self.extra_mib = max(self.peak_mib - self._before, 0.0)
