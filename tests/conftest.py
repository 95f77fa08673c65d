"""Shared fixtures: tiny configs that train in a second or two on a CPU."""

from __future__ import annotations

from typing import Any

import pytest
import torch

TINY: dict[str, dict[str, Any]] = {
    "seq_digits": {"model.hidden_size": 8, "train.max_epochs": 2, "train.batch_size": 64},
    "adding": {
        "task.params.T": 12,
        "task.params.n_train": 96,
        "task.params.n_val": 32,
        "task.params.n_test": 32,
        "model.hidden_size": 8,
        "train.max_epochs": 2,
    },
    "copy_memory": {
        "task.params.T": 5,
        "task.params.n_train": 96,
        "task.params.n_val": 32,
        "task.params.n_test": 32,
        "model.hidden_size": 8,
        "train.max_epochs": 2,
    },
}


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
