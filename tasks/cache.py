"""Processed tensors of a real task, cached under a key of the source content and task version.

A cache file is written to a temporary name and renamed when complete, so an interrupted or
failed build never leaves a half-written cache behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any

import torch

from regbench.tasks.sources import cache_dir


def cached(
    task: str, version: int, key: str, build: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """The processed data for (task, version, source key), built on first use."""
    path = cache_dir() / f"{task}-v{version}-{key}.pt"
    if path.is_file():
        return torch.load(path, weights_only=True)
    data = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(data, f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return data
