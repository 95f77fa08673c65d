"""The LightningModule: a RecurrentNet, the task's loss and metric, and the optimizer.

Logged keys: `train/loss` (per epoch, regularizer penalties included), `val/loss`,
`val/<metric>`, `test/loss`, `test/<metric>`. `train/loss` is summed here and logged once, at
the epoch's last batch (EpochLoss): a `self.log` call costs about 0.4 ms, a tenth of a small
model's step.

Protocol features that act on the training loop live here: the per-window lr scale of
variable-length BPTT (a batch's `lr_scale`, tasks/language.py; Merity et al. 2017, Sec. 4.1)
and NT-ASGD's averaging (Merity et al. 2017, Sec. 3; models/optim.py `WeightAverage`), whose
averaged weights evaluate the model once averaging has begun.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call

from regbench.models.network import NetOutput, RecurrentNet
from regbench.models.optim import (
    NONMONO,
    WeightAverage,
    build_optimizer,
    build_schedule,
    scaled_lr,
)
from regbench.models.variants import build_regularizers
from regbench.tasks.base import InputSpec, Protocol

Batch = dict[str, Tensor]


class EpochLoss:
    """The epoch's training loss as `self.log(key, loss, on_epoch=True, batch_size=n)` at
    every step gives it, bit for bit: Lightning's `_ResultMetric.update` sums `loss × n` in
    float32 (or the default dtype, if float64) from 0 and counts `n` in an int64 tensor, on
    the loss's device, and its `compute` divides the two. Held in a plain list, so a step
    assigns no module attribute."""

    def __init__(self) -> None:
        self.state: list[Tensor] = []  # [Σ loss × n, Σ n], empty before the epoch's first step

    def reset(self) -> None:
        self.state.clear()

    def add(self, loss: Tensor, size: int) -> None:
        value = loss.detach()
        if value.dtype not in (torch.float32, torch.float64):
            value = value.to(_result_dtype())
        if not self.state:
            zero = torch.tensor(0.0, dtype=_result_dtype(), device=value.device)
            self.state[:] = [zero, torch.tensor(0, device=value.device)]
        total, count = self.state
        # as Lightning writes it: `+`, not `+=`, for its type promotion
        self.state[:] = [total + value * size, count + size]

    def mean(self) -> Tensor | None:
        """Σ loss × n / Σ n, or None when no step was added."""
        return self.state[0] / self.state[1] if self.state else None


def _result_dtype() -> torch.dtype:
    """The dtype Lightning accumulates logged values in: the default, at least float32."""
    dtype = torch.get_default_dtype()
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def build_network(config: Mapping[str, Any], spec: InputSpec, kind: str) -> RecurrentNet:
    """The network a resolved config describes, initialised as it says."""
    m = config["model"]
    net = RecurrentNet(
        spec,
        kind,
        cell=m["cell"],
        hidden_size=m["hidden_size"],
        num_layers=m["num_layers"],
        embedding_size=m["embedding_size"],
        regularizers=build_regularizers(config["regularizers"]),
        one_hot=m["embedding"] == "one_hot",
        tie_weights=m["tie_weights"],
        learned_state=m.get("initial_state", "zeros") == "learned",
        h0_noise=m.get("h0_noise", 0.0),
    )
    net.initialize(m["init"], m["init_scale"], m["forget_bias"])
    return net


class SequenceModel(L.LightningModule):
    """Trains a RecurrentNet on one task's loss and reports the task's metric."""

    def __init__(self, config: Mapping[str, Any], spec: InputSpec, protocol: Protocol) -> None:
        super().__init__()
        self.config = config
        self.kind = protocol.kind
        self.metric = protocol.metric_def
        self.net = build_network(config, spec, protocol.kind)
        self.val_metric = self.metric.make(spec.num_outputs)
        self.test_metric = self.metric.make(spec.num_outputs)
        self.carried: dict[str, list] = {}
        train = config["train"]
        self.averager = None
        if train["optimizer"] == "nt_asgd":
            self.averager = WeightAverage(self.net, train.get("nonmono", NONMONO))
        self.lr_scale = 1.0
        self.epoch_loss = EpochLoss()

    def __setattr__(self, name: str, value: Any) -> None:
        """Lightning sets `_current_fx_name` around each of its hook calls, about 45 a training
        step; that plain attribute skips nn.Module's search of parameters, buffers and
        submodules (which would set it the same way)."""
        if name == "_current_fx_name":
            self.__dict__[name] = value
        else:
            super().__setattr__(name, value)

    def forward(self, batch: Batch, split: str = "train") -> NetOutput:
        """A stateful batch (truncated BPTT) starts from the state the previous batch of the
        same split ended in, detached; others start from zeros."""
        stateful = bool(batch.get("stateful"))
        args = (batch["x"], batch.get("lengths"), self.carried.get(split) if stateful else None)
        averaged = None if self.averager is None or self.training else self.averager.weights()
        out = self.net(*args) if averaged is None else functional_call(self.net, averaged, args)
        if stateful:
            self.carried[split] = [tuple(s.detach() for s in state) for state in out.state]
        return out

    def on_train_epoch_start(self) -> None:
        self.carried.pop("train", None)
        self.epoch_loss.reset()

    def on_train_epoch_end(self) -> None:
        """`train/loss` of an epoch that ended before its last batch (a `max_steps` or a
        stop request): logged now, after the callbacks' epoch-end hooks (EpochLog's row)."""
        self._log_epoch_loss()

    def on_train_batch_start(self, batch: Batch, batch_idx: int) -> None:
        scale = batch.get("lr_scale")
        scale = 1.0 if scale is None else float(scale)
        if scale != self.lr_scale:  # assigned only when it changes: no setattr per step
            self.lr_scale = scale

    def optimizer_step(
        self, epoch: int, batch_idx: int, optimizer: Any, closure: Any = None
    ) -> None:
        """The step at the batch's lr scale (variable-length BPTT; 1 otherwise)."""
        if self.lr_scale == 1.0:
            super().optimizer_step(epoch, batch_idx, optimizer, closure)
            return
        with scaled_lr(optimizer, self.lr_scale):
            super().optimizer_step(epoch, batch_idx, optimizer, closure)

    def transfer_batch_to_device(self, batch: Any, device: Any, dataloader_idx: int) -> Any:
        """The batch as it is on the CPU, where the loaders build it (Lightning's walk
        through the batch dict costs about 40 µs a step); moved as Lightning does elsewhere."""
        if device.type == "cpu":
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def on_train_batch_end(self, outputs: Any, batch: Batch, batch_idx: int) -> None:
        if self.averager is not None:
            self.averager.update(self.net)

    def on_validation_end(self) -> None:
        """NT-ASGD's trigger, on this check's validation loss (after the checkpoints of the
        check were written: averaging starts with the next step)."""
        if self.averager is None or self.trainer.sanity_checking:
            return
        loss = self.trainer.callback_metrics.get("val/loss")
        if loss is not None:
            self.averager.check(float(loss))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.averager is not None:
            checkpoint["nonmono_history"] = list(self.averager.history)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.averager is not None:
            self.averager.history = list(checkpoint.get("nonmono_history", []))

    def on_validation_epoch_start(self) -> None:
        self.carried.pop("val", None)

    def on_test_epoch_start(self) -> None:
        self.carried.pop("test", None)

    def _losses(self, prediction: Tensor, target: Tensor) -> Tensor:
        """Per-example (or per-position) losses, unreduced."""
        if self.kind == "regress_last":
            return F.mse_loss(prediction, target, reduction="none")
        return F.cross_entropy(prediction.flatten(0, -2), target.flatten(), reduction="none")

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        out = self(batch, "train")
        loss = self._losses(out.prediction, batch["y"]).mean()
        if out.penalty is not None:
            loss = loss + out.penalty
        if self.config["train"]["loss"] == "sum_steps" and self.kind == "classify_each":
            # summed over the window, averaged over the batch; a penalty (means over steps,
            # as in Merity et al.'s code) is scaled alike, so it keeps its weight against the
            # cross-entropy at any window length
            loss = loss * batch["y"].shape[1]
        if self._trainer is not None:  # in a fit (tests call the step without one)
            self.epoch_loss.add(loss, len(batch["y"]))
            if self._last_batch():
                self._log_epoch_loss()
        return loss

    def _last_batch(self) -> bool:
        """Whether this step is the epoch's last: Lightning's own test (its training epoch
        loop's `_num_ready_batches_reached`), so `train/loss` is logged before the epoch's
        validation and EpochLog's row."""
        trainer = self.trainer
        progress = trainer.fit_loop.epoch_loop.batch_progress
        return progress.current.ready == trainer.num_training_batches or progress.is_last_batch

    def _log_epoch_loss(self) -> None:
        """Log the epoch's `train/loss` once; Lightning stores `0 + mean × 1` and returns it
        `/ 1`, so the logged value is the mean bit for bit."""
        mean = self.epoch_loss.mean()
        if mean is not None:
            self.log("train/loss", mean, on_step=False, on_epoch=True, batch_size=1)
            self.epoch_loss.reset()

    def _evaluate(self, batch: Batch, split: str) -> None:
        out = self(batch, split)
        losses = self._losses(out.prediction, batch["y"])
        metric = self.val_metric if split == "val" else self.test_metric
        if self.metric.from_nll:
            metric.update(losses)
        else:
            metric.update(out.prediction, batch["y"])
        size = len(batch["y"])
        self.log(f"{split}/loss", losses.mean(), on_step=False, on_epoch=True, batch_size=size)
        self.log(f"{split}/{self.metric.name}", metric, on_step=False, on_epoch=True)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def configure_optimizers(self) -> Any:
        optimizer = build_optimizer(self.parameters(), self.config["train"])
        schedule = build_schedule(optimizer, self.config["train"])
        if schedule is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": schedule}

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @staticmethod
    def count_tokens(batch: Batch) -> int:
        """Time steps processed in a batch (the throughput unit)."""
        lengths = batch.get("lengths")
        x = batch["x"]
        return int(lengths.sum()) if lengths is not None else x.shape[0] * x.shape[1]
