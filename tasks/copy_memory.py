"""The copy-memory task in the TCN protocol (Bai et al. 2018; locuslab/TCN `copy_memory`).

Input (length T+20, one scalar per step, as in TCN): 10 digits drawn from 1–8, then T−1 zeros,
then 11 nines; the first nine asks for recall. Target: 0 at the first T+10 positions, then the
10 digits. The metric is the cross-entropy over all T+20 positions (10 classes). A memoryless
model that outputs 0 where it is certain and a uniform guess over the 8 digits at the last 10
positions scores

    10 · ln 8 / (T + 20)        (0.02039 at T = 1000),

which is what B18's LSTM, GRU and RNN reach at T=1000 (0.0204 / 0.0197 / 0.0202).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from regbench.tasks.base import InputSpec, Protocol, Task
from regbench.tasks.registry import register_task
from regbench.tasks.synthetic import TCN_RATES, positive_sizes, split_generators, split_sizes

MEMORY = 10


def memoryless_baseline(steps: int) -> float:
    """Cross-entropy of the best model that remembers nothing: 10·ln 8/(T+20)."""
    return MEMORY * math.log(8) / (steps + 2 * MEMORY)


def copy_batch(rng: np.random.Generator, n: int, steps: int) -> dict[str, torch.Tensor]:
    """`n` copy-memory sequences with `steps` blanks."""
    digits = rng.integers(1, 9, (n, MEMORY))
    x = np.zeros((n, steps + 2 * MEMORY), dtype=np.float32)
    x[:, :MEMORY] = digits
    x[:, -(MEMORY + 1) :] = 9.0
    y = np.zeros((n, steps + 2 * MEMORY), dtype=np.int64)
    y[:, -MEMORY:] = digits
    return {"x": torch.from_numpy(x[..., None]), "y": torch.from_numpy(y)}


@register_task
class CopyMemory(Task):
    protocol = Protocol(
        name="copy_memory",
        version=1,
        metric="cross_entropy",
        kind="classify_each",
        splits="n_train / n_val / n_test generated sequences (default 10,000 / 1,000 / 1,000)",
        reference="Bai, Kolter & Koltun 2018 (TCN), Tables 1 and 3, copy memory T=1000: LSTM "
        "1×50, clip 1, RMSprop 5e-4 (TCN script), batch 32; test CE LSTM 0.0204",
        params={"T": 1000, "n_train": 10_000, "n_val": 1_000, "n_test": 1_000},
        model={"hidden_size": 50, "num_layers": 1},
        train={"optimizer": "rmsprop", "lr": 5e-4, "batch_size": 32, "max_epochs": 10, "clip": 1.0},
        regularizers=TCN_RATES,
    )

    def build_splits(self) -> dict[str, dict[str, torch.Tensor]]:
        steps = self.params["T"]
        sizes = split_sizes(self.params)
        rngs = split_generators(self.data_seed)
        return {name: copy_batch(rngs[name], sizes[name], steps) for name in sizes}

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> str | None:
        if params["T"] < 1:
            return f"T must be at least 1, got {params['T']}"
        return positive_sizes(params)

    def input_spec(self) -> InputSpec:
        return InputSpec(num_outputs=10, features=1)

    def references(self) -> dict[str, float]:
        return {"memoryless baseline": memoryless_baseline(self.params["T"])}
