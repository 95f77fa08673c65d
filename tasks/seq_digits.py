"""Sequential digits: scikit-learn's bundled 8×8 handwritten digits, read pixel by pixel.

A small, download-free stand-in for sequential MNIST: 1,797 images, 64 steps of one pixel
(scaled to [0, 1]), 10 classes, classification from the last step. The train/val/test split is
stratified and fixed by `split_seed`, so every run of the protocol sees the same test set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from regbench.tasks.base import InputSpec, Protocol, Task
from regbench.tasks.registry import register_task


@register_task
class SeqDigits(Task):
    protocol = Protocol(
        name="seq_digits",
        version=1,
        metric="accuracy",
        kind="classify_last",
        splits="1,078 / 359 / 360 images (60/20/20), stratified, fixed by split_seed",
        reference="regbench protocol (no published reference); sizes follow the TCN sMNIST "
        "LSTM (Bai et al. 2018) scaled to 64 steps",
        params={"split_seed": 0, "val_fraction": 0.2, "test_fraction": 0.2},
        model={"hidden_size": 64, "num_layers": 1, "forget_bias": 1.0},
        train={"optimizer": "adam", "lr": 0.01, "batch_size": 32, "max_epochs": 20, "clip": 1.0},
        # A one-pixel input is never dropped; light rates on hidden and output; zoneout at the
        # rate Krueger et al. 2017 use for (permuted) sequential MNIST.
        regularizers={
            "dropout": {"p_input": 0.0, "p_hidden": 0.1, "p_output": 0.1},
            "variational": {"p_input": 0.0, "p_hidden": 0.1, "p_output": 0.1, "p_recurrent": 0.1},
            "zoneout": {"z_c": 0.15, "z_h": 0.15},
        },
    )

    def build_splits(self) -> dict[str, dict[str, torch.Tensor]]:
        digits = load_digits()
        x = (digits.images.reshape(-1, 64, 1) / 16.0).astype(np.float32)
        y = digits.target.astype(np.int64)
        index = np.arange(len(y))
        p = self.params
        held_out = p["val_fraction"] + p["test_fraction"]
        train, rest = train_test_split(
            index, test_size=held_out, stratify=y, random_state=p["split_seed"]
        )
        val, test = train_test_split(
            rest,
            test_size=p["test_fraction"] / held_out,
            stratify=y[rest],
            random_state=p["split_seed"],
        )
        return {
            name: {"x": torch.from_numpy(x[idx]), "y": torch.from_numpy(y[idx])}
            for name, idx in (("train", train), ("val", val), ("test", test))
        }

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> str | None:
        val, test = params["val_fraction"], params["test_fraction"]
        if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
            return (
                f"val_fraction and test_fraction must be in (0, 1) with sum < 1, got {val}, {test}"
            )
        return None

    def input_spec(self) -> InputSpec:
        return InputSpec(num_outputs=10, features=1)

    def references(self) -> dict[str, float]:
        return {"chance": 0.1}
