"""Shared fixtures: tiny configs that train in a second or two on a CPU."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from regbench.checks.golden import EMBEDDED
from regbench.checks.golden import TASKS as GOLDEN_TASKS

TINY: dict[str, dict[str, Any]] = {task: GOLDEN_TASKS[task][0] for task in EMBEDDED}


@pytest.fixture
def tiny() -> dict[str, dict[str, Any]]:
    return {task: dict(o) for task, o in TINY.items()}


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _isolated_data(tmp_path_factory, monkeypatch) -> None:
    """Every test caches processed data in its own folder and sees no local data folder
    unless it sets one (the real-data tests read REGBENCH_REAL_DATA instead)."""
    monkeypatch.setenv("REGBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("REGBENCH_DATA", raising=False)
    # wandb records its service in the environment of a process that logged a run; a test's
    # subprocesses must start their own instead of sharing this one's
    monkeypatch.delenv("WANDB_SERVICE", raising=False)
