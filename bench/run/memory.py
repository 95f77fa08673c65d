"""Peak memory of a run: GPU memory allocated by torch, or the process's peak resident set.

On Linux the resident high-water mark (VmHWM) is reset at the start of each run through
/proc/self/clear_refs, so sequential runs in one worker process are measured separately.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with contextlib.suppress(OSError):
        _CLEAR_REFS.write_text("5")


def peak_bytes(device: torch.device) -> dict[str, int | None]:
    """{'gpu_allocated': bytes or None, 'cpu_rss': bytes or None}."""
    gpu = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return {"gpu_allocated": gpu, "cpu_rss": _rss_high_water_mark()}


def _rss_high_water_mark() -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
