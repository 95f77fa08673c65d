"""Lightning callbacks that record a run and make it resumable: per-epoch metrics, the
attempt's wall time, training throughput, the random state, and a guard against divergence."""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from regbench.run.rundir import write_json_atomic, write_text_atomic

History = Callable[[dict[str, Any]], None]


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


class EpochLog(L.Callback):
    """Appends one JSON line per epoch to metrics.jsonl: every logged epoch metric, the lr
    and the epoch's wall time, after validation (train and val share a line), and sends each
    row to `history` (the W&B run). A resumed run first drops the lines of epochs it will redo
    and sends the lines it keeps, so the history of its W&B run holds every epoch once."""

    def __init__(self, path: Path, history: History | None = None) -> None:
        self.path = path
        self.history = history
        self.started = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or not self.path.exists():
            return
        rows = [json.loads(ln) for ln in self.path.read_text().splitlines() if ln.strip()]
        kept = [r for r in rows if r["epoch"] < trainer.current_epoch]
        write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        if self.history:
            for row in kept:
                self.history(row)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        row: dict[str, Any] = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        for key, value in sorted(trainer.callback_metrics.items()):
            row[key] = float(value)
        row["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
        row["epoch_time_s"] = time.perf_counter() - self.started
        with open(self.path, "a") as f:
            f.write(json.dumps(row, allow_nan=True) + "\n")
        if self.history:
            self.history(row)


class AttemptClock(L.Callback):
    """Keeps the wall time in attempts.json current: the earlier attempts' time plus this
    attempt's so far, rewritten after every epoch, so a killed attempt loses at most the time
    of the epoch it was in."""

    def __init__(self, path: Path, record: dict[str, Any]) -> None:
        self.path = path
        self.record = record
        self.before = record["wall_time_s"]
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self.save()

    def save(self) -> dict[str, Any]:
        """attempts.json with the time until now; returns its record."""
        self.record["wall_time_s"] = self.before + time.perf_counter() - self.started
        write_json_atomic(self.path, self.record)
        return self.record


class Throughput(L.Callback):
    """Time steps and sequences per second of training (forward, backward and update;
    data loading and validation excluded), summed over every attempt of a resumed run."""

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
        self.tokens += pl_module.count_tokens(batch) * trainer.world_size
        self.sequences += len(batch["y"]) * trainer.world_size

    def state_dict(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "sequences": self.sequences, "seconds": self.seconds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tokens, self.sequences, self.seconds = (
            state["tokens"],
            state["sequences"],
            state["seconds"],
        )

    def summary(self) -> dict[str, float]:
        seconds = self.seconds or math.nan
        return {
            "train_batch_time_s": self.seconds,
            "tokens_per_s": self.tokens / seconds,
            "sequences_per_s": self.sequences / seconds,
        }


class RandomState(L.Callback):
    """Saves the torch (CPU and CUDA), NumPy and Python random states with every checkpoint
    and restores them on resume, so dropout masks continue where they stopped."""

    def state_dict(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        state = {
            "torch": torch.get_rng_state(),
            # plain types, so Lightning can load the checkpoint with weights_only=True
            "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],
            "python": random.getstate(),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
        random.setstate(state["python"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


class DivergenceGuard(L.Callback):
    """Stops a run whose training loss is NaN or infinite, naming the step."""

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        value = loss.item()  # the 0-d loss: one read, no tensor ops
        if not math.isfinite(value):
            raise Diverged(
                f"training loss {value} at step {trainer.global_step - 1} "
                f"(epoch {trainer.current_epoch}, batch {batch_idx})"
            )
