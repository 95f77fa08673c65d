"""Optimizers and learning-rate schedules named in a run's `train` config."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

OPTIMIZERS = ("sgd", "adam", "rmsprop", "adagrad")
SCHEDULES = ("none", "decay", "plateau")


def build_optimizer(
    params: Iterable[nn.Parameter], cfg: Mapping[str, Any]
) -> torch.optim.Optimizer:
    """SGD, Adam, RMSprop or Adagrad with the config's lr, weight decay and momentum."""
    name, lr, wd = cfg["optimizer"], cfg["lr"], cfg["weight_decay"]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg["momentum"], weight_decay=wd)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=cfg["momentum"], weight_decay=wd)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=wd)
    raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")


def build_schedule(optimizer: torch.optim.Optimizer, cfg: Mapping[str, Any]) -> dict | None:
    """A Lightning scheduler config, or None.

    'decay': lr × decay_factor per epoch after epoch `decay_start` (Zaremba et al. 2014:
    lr 1, halved per epoch after epoch 4). 'plateau': lr × plateau_factor after an epoch whose
    validation loss did not improve (pytorch/examples word_language_model: ÷4).
    """
    name = cfg["schedule"]
    if name == "none":
        return None
    if name == "decay":
        start, factor = cfg["decay_start"], cfg["decay_factor"]
        sched = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda epoch: factor ** max(0, epoch + 1 - start)
        )
        return {"scheduler": sched, "interval": "epoch"}
    if name == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=cfg["plateau_factor"], patience=cfg["plateau_patience"]
        )
        return {"scheduler": sched, "interval": "epoch", "monitor": "val/loss"}
    raise ValueError(f"unknown schedule {name!r}; valid: {', '.join(SCHEDULES)}")
