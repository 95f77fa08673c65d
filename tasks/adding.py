"""The adding problem (Hochreiter & Schmidhuber 1997), in the TCN protocol (Bai et al. 2018).

Each input step carries two channels: a value drawn from U(0, 1) and a marker that is 1 at two
positions drawn uniformly without replacement (as in locuslab/TCN) and 0 elsewhere. The target
is the sum of the two marked values; the metric is the MSE of a prediction from the last step.
Predicting the constant 1 gives the variance of the sum, 2 · 1/12 = 0.1667 (the trivial MSE).

Protocol defaults are B18's LSTM for T=600 (1×130, clip 5, forget bias 1, batch 32; 50k
training sequences). B18 does not report the optimizer; the ladder uses Adam 2e-3. B18 has no
validation split; we generate one of 1,000 sequences from its own stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from regbench.tasks.base import InputSpec, Protocol, Task
from regbench.tasks.registry import register_task
from regbench.tasks.synthetic import TCN_RATES, positive_sizes, split_generators, split_sizes

TRIVIAL_MSE = 2.0 / 12.0


def adding_batch(rng: np.random.Generator, n: int, steps: int) -> dict[str, torch.Tensor]:
    """`n` adding-problem sequences of length `steps`."""
    values = rng.random((n, steps), dtype=np.float32)
    first = rng.integers(0, steps, n)
    second = rng.integers(0, steps - 1, n)
    second = second + (second >= first)
    rows = np.arange(n)
    markers = np.zeros((n, steps), dtype=np.float32)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    target = values[rows, first] + values[rows, second]
    x = np.stack([values, markers], axis=-1)
    return {"x": torch.from_numpy(x), "y": torch.from_numpy(target.astype(np.float32))}


@register_task
class Adding(Task):
    protocol = Protocol(
        name="adding",
        version=1,
        metric="mse",
        kind="regress_last",
        splits="n_train / n_val / n_test generated sequences (default 50,000 / 1,000 / 1,000)",
        reference="Bai, Kolter & Koltun 2018 (TCN), Table 3, adding T=600: LSTM 1×130, clip 5, "
        "forget bias 1; test MSE LSTM 0.164, GRU 5.3e-5",
        params={"T": 600, "n_train": 50_000, "n_val": 1_000, "n_test": 1_000},
        model={"hidden_size": 130, "num_layers": 1, "forget_bias": 1.0},
        train={"optimizer": "adam", "lr": 2e-3, "batch_size": 32, "max_epochs": 5, "clip": 5.0},
        regularizers=TCN_RATES,
    )

    def build_splits(self) -> dict[str, dict[str, torch.Tensor]]:
        steps = self.params["T"]
        sizes = split_sizes(self.params)
        rngs = split_generators(self.data_seed)
        return {name: adding_batch(rngs[name], sizes[name], steps) for name in sizes}

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> str | None:
        if params["T"] < 2:
            return f"T must be at least 2 (two marked positions), got {params['T']}"
        return positive_sizes(params)

    def input_spec(self) -> InputSpec:
        return InputSpec(num_outputs=1, features=2)

    def references(self) -> dict[str, float]:
        return {"trivial (predict 1)": TRIVIAL_MSE}
