"""The LightningModule: a RecurrentNet, the task's loss and metric, and the optimizer.

Logged keys: `train/loss` (per epoch, regularizer penalties included), `val/loss`,
`val/<metric>`, `test/loss`, `test/<metric>`.

Protocol features that act on the training loop live here: the per-window lr scale of
variable-length BPTT (a batch's `lr_scale`, tasks/language.py; Merity et al. 2017, Sec. 4.1)
and NT-ASGD's averaging (Merity et al. 2017, Sec. 3; models/optim.py `WeightAverage`), whose
averaged weights evaluate the model once averaging has begun.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
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

    def on_train_batch_start(self, batch: Batch, batch_idx: int) -> None:
        self.lr_scale = float(batch.get("lr_scale", 1.0))

    def optimizer_step(
        self, epoch: int, batch_idx: int, optimizer: Any, closure: Any = None
    ) -> None:
        """The step at the batch's lr scale (variable-length BPTT; 1 otherwise)."""
        with scaled_lr(optimizer, self.lr_scale):
            super().optimizer_step(epoch, batch_idx, optimizer, closure)

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
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(batch["y"]))
        return loss

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
