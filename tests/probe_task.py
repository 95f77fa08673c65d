"""A throwaway task plugin for the launcher tests, installed as the package `regbench_probe`
(see tests/probe.py): parity of random bits, whose runs succeed, raise, diverge (NaN inputs)
or kill their own process, chosen by the run's data seed; `batch_sleep` slows training."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import torch

from regbench.tasks import InputSpec, Protocol, Task


class Probe(Task):
    protocol = Protocol(
        name="probe",
        version=1,
        metric="accuracy",
        kind="classify_last",
        splits="n_train / 64 / 64 random bit strings",
        reference="test task (no reference)",
        params={
            "T": 6,
            "n_train": 128,
            "raise_seed": -1,
            "crash_seed": -1,
            "nan_seed": -1,
            "batch_sleep": 0.0,
        },
        model={"hidden_size": 8},
        train={"optimizer": "adam", "lr": 0.01, "max_epochs": 2, "batch_size": 32},
    )

    def build_splits(self) -> dict[str, dict[str, torch.Tensor]]:
        if self.data_seed == self.params["raise_seed"]:
            raise RuntimeError(f"probe raises for data seed {self.data_seed}")
        if self.data_seed == self.params["crash_seed"]:
            os._exit(3)  # no exception, no result: what an OOM kill or a segfault leaves
        rng = np.random.default_rng(self.data_seed)
        sizes = {"train": self.params["n_train"], "val": 64, "test": 64}
        splits = {}
        for name, n in sizes.items():
            bits = rng.integers(0, 2, (n, self.params["T"]))
            x = torch.tensor(bits, dtype=torch.float32).unsqueeze(-1)
            if self.data_seed == self.params["nan_seed"]:
                x[:] = float("nan")  # the loss is NaN from the first step
            splits[name] = {
                "x": x,
                "y": torch.tensor(bits.sum(1) % 2),
            }
        return splits

    def input_spec(self) -> InputSpec:
        return InputSpec(num_outputs=2, features=1)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self.trainer is not None and self.trainer.training:
            time.sleep(self.params["batch_sleep"])
        return batch
