"""Shared pieces of the generated tasks: one independent random stream per split."""

from __future__ import annotations

import numpy as np

from regbench.tasks.base import SPLITS

# Regularizer rates for the TCN synthetic tasks: B18 (Table 3) lists dropout 0.05 for its
# copy-memory LSTM; zoneout at the rate Krueger et al. 2017 use on sequential-pixel MNIST.
# The scalar input is never dropped: dropping it erases the data the task is about.
TCN_RATES = {
    "dropout": {"p_input": 0.0, "p_hidden": 0.05, "p_output": 0.05},
    "variational": {"p_input": 0.0, "p_hidden": 0.05, "p_output": 0.05, "p_recurrent": 0.05},
    "zoneout": {"z_c": 0.15, "z_h": 0.15},
}


def split_generators(data_seed: int) -> dict[str, np.random.Generator]:
    """Independent generators for train/val/test, so changing one split's size leaves the
    others' data unchanged."""
    streams = np.random.SeedSequence(data_seed).spawn(len(SPLITS))
    return {name: np.random.default_rng(s) for name, s in zip(SPLITS, streams, strict=True)}


def split_sizes(params: dict) -> dict[str, int]:
    return {"train": params["n_train"], "val": params["n_val"], "test": params["n_test"]}


def positive_sizes(params: dict) -> str | None:
    """A problem with the split sizes, or None."""
    bad = {k: v for k, v in split_sizes(params).items() if v < 1}
    return f"split sizes must be at least 1, got {bad}" if bad else None
