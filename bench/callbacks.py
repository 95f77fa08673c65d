"""Lightning callbacks that record a run: per-epoch metrics and training throughput."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch


class EpochLog(L.Callback):
    """Appends one JSON line per epoch to metrics.jsonl: every logged epoch metric, the lr
    and the epoch's wall time. Written after validation, so train and val share a line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.started = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        row: dict[str, Any] = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        for key, value in sorted(trainer.callback_metrics.items()):
            row[key] = float(value)
        row["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
        row["epoch_time_s"] = time.perf_counter() - self.started
        with open(self.path, "a") as f:
            f.write(json.dumps(row, allow_nan=True) + "\n")


class Throughput(L.Callback):
    """Time steps and sequences per second of training (forward, backward and update;
    data loading and validation excluded)."""

    def __init__(self) -> None:
        self.tokens = 0
        self.sequences = 0
        self.seconds = 0.0
        self._start = 0.0

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        self.seconds += time.perf_counter() - self._start
        self.tokens += pl_module.count_tokens(batch)
        self.sequences += len(batch["y"])

    def summary(self) -> dict[str, float]:
        seconds = self.seconds or math.nan
        return {
            "train_batch_time_s": self.seconds,
            "tokens_per_s": self.tokens / seconds,
            "sequences_per_s": self.sequences / seconds,
        }
