"""Optimizers and learning-rate schedules named in a run's `train` config.

Besides the plain optimizers: AMSGrad (Adam's `amsgrad` flag; Reddi et al. 2018, as Wen et
al. 2018 train character-level PTB), RMSprop with a chosen decay `rmsprop_alpha` (Krueger et
al. 2017 use 0.5 on permuted MNIST), NT-ASGD (Merity et al. 2017, Sec. 3: SGD until the
non-monotone trigger fires, then the running mean of the iterates, evaluated in place of the
weights; `WeightAverage`), the 'nonmono' schedule (Wen et al. 2018, App. D.1: lr ÷ 4 whenever
the same trigger fires) and the per-window lr scale of variable-length BPTT (`scaled_lr`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

OPTIMIZERS = ("sgd", "adam", "rmsprop", "adagrad", "nt_asgd")
SCHEDULES = ("none", "decay", "plateau", "nonmono")
NONMONO = 5  # the n of Merity et al. 2017 (`nonmono 5`): the default of train.nonmono
RMSPROP_ALPHA = 0.99  # PyTorch's default decay, the default of train.rmsprop_alpha


def build_optimizer(
    params: Iterable[nn.Parameter], cfg: Mapping[str, Any]
) -> torch.optim.Optimizer:
    """SGD, Adam (AMSGrad with `amsgrad`), RMSprop (decay `rmsprop_alpha`) or Adagrad with the
    config's lr, weight decay and momentum. NT-ASGD trains with plain SGD; its averaging is
    `WeightAverage`, which the model owns so that its checkpoints evaluate averaged."""
    name, lr, wd = cfg["optimizer"], cfg["lr"], cfg["weight_decay"]
    if name in ("sgd", "nt_asgd"):
        return torch.optim.SGD(params, lr=lr, momentum=cfg["momentum"], weight_decay=wd)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd, amsgrad=cfg.get("amsgrad", False))
    if name == "rmsprop":
        alpha = cfg.get("rmsprop_alpha", RMSPROP_ALPHA)
        return torch.optim.RMSprop(
            params, lr=lr, alpha=alpha, momentum=cfg["momentum"], weight_decay=wd
        )
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=wd)
    raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")


def build_schedule(optimizer: torch.optim.Optimizer, cfg: Mapping[str, Any]) -> dict | None:
    """A Lightning scheduler config, or None.

    'decay': lr × decay_factor per epoch after epoch `decay_start` (Zaremba et al. 2014:
    lr 1, halved per epoch after epoch 4). 'plateau': lr × plateau_factor after an epoch whose
    validation loss did not improve (pytorch/examples word_language_model: ÷4). 'nonmono':
    lr × plateau_factor whenever the non-monotone trigger fires on the validation loss
    (Wen et al. 2018, App. D.1; `NonMonotoneDecay`).
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
    if name == "nonmono":
        sched = NonMonotoneDecay(optimizer, cfg["plateau_factor"], cfg.get("nonmono", NONMONO))
        return {"scheduler": sched, "interval": "epoch", "monitor": "val/loss"}
    raise ValueError(f"unknown schedule {name!r}; valid: {', '.join(SCHEDULES)}")


def non_monotone(history: Sequence[float], value: float, n: int) -> bool:
    """The non-monotone trigger (Merity et al. 2017, Sec. 3, Algorithm 1): whether `value`,
    the newest check of a metric to minimize, is worse than the best of the checks made more
    than `n` checks before it (`history` holds the earlier checks, oldest first). It cannot
    fire before n + 1 checks were made."""
    return len(history) > n and value > min(history[:-n])


class NonMonotoneDecay(torch.optim.lr_scheduler.ReduceLROnPlateau):
    """lr × `factor` at every check where the non-monotone trigger fires (Wen et al. 2018,
    App. D.1: "decay the learning rate by a factor of 4 based on the nonmonotonic criterion
    of Merity et al. 2017"). Every check stays in the history, a decay does not reset it:
    the criterion is read literally, so it fires again at the next check unless the metric
    then beats the best of the checks more than n before it. Lightning steps it after each
    validation with the monitored value; the history is plain floats in its state dict, so
    it survives a checkpoint."""

    def __init__(self, optimizer: torch.optim.Optimizer, factor: float, n: int) -> None:
        super().__init__(optimizer, mode="min", factor=factor, patience=0)
        self.n = n
        self.history: list[float] = []

    def step(self, metrics: Any, epoch: int | None = None) -> None:  # type: ignore[override]
        value = float(metrics)
        self.last_epoch += 1
        if non_monotone(self.history, value, self.n):
            for group in self.optimizer.param_groups:
                group["lr"] = group["lr"] * self.factor
        self.history.append(value)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]


class WeightAverage(nn.Module):
    """The averaging of NT-ASGD (Merity et al. 2017, Sec. 3, Algorithm 1): SGD trains until
    the non-monotone trigger fires on the validation loss (`check`, `nonmono` checks); from
    then on this keeps the running mean of the iterates after each step, as awd-lstm-lm's
    switch to `torch.optim.ASGD(t0=0, lambd=0)` does (the step itself stays plain SGD), and
    the model is evaluated with the mean in place of its weights (`weights`). The means are
    buffers, so a checkpoint evaluates as the run did; the trigger's history is kept in the
    checkpoint by the model (`history`)."""

    def __init__(self, module: nn.Module, n: int = NONMONO) -> None:
        super().__init__()
        self.n = n
        self.history: list[float] = []
        self.names = [name for name, _ in module.named_parameters()]
        for i, (_, param) in enumerate(module.named_parameters()):
            self.register_buffer(f"mean_{i}", torch.zeros_like(param, requires_grad=False))
        self.register_buffer("active", torch.zeros((), dtype=torch.bool))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def check(self, value: float) -> bool:
        """Record one validation check; start averaging if the trigger fires (once)."""
        fire = not bool(self.active) and non_monotone(self.history, value, self.n)
        self.history.append(float(value))
        if fire:
            self.active.fill_(True)
        return fire

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """After an optimizer step: mean ← mean + (θ − mean) / k at the k-th step averaged."""
        if not bool(self.active):
            return
        self.steps += 1
        weight = 1.0 / int(self.steps)
        for mean, (_, param) in zip(self._means(), module.named_parameters(), strict=True):
            mean.lerp_(param.detach(), weight)

    def weights(self) -> dict[str, torch.Tensor] | None:
        """The averaged parameters by name, or None before any averaged step."""
        if int(self.steps) == 0:
            return None
        return dict(zip(self.names, self._means(), strict=True))

    def _means(self) -> Iterator[torch.Tensor]:
        return (getattr(self, f"mean_{i}") for i in range(len(self.names)))


@contextmanager
def scaled_lr(optimizer: Any, scale: float) -> Iterator[None]:
    """Every param group's lr × `scale` for one step, then restored (Merity et al. 2017,
    Sec. 4.1: with variable-length BPTT windows the lr is rescaled by seq_len / bptt, so that
    short windows do not weigh as much as long ones)."""
    if scale == 1.0:
        yield
        return
    groups = optimizer.param_groups
    saved = [group["lr"] for group in groups]
    for group in groups:
        group["lr"] = group["lr"] * scale
    try:
        yield
    finally:
        for group, lr in zip(groups, saved, strict=True):
            group["lr"] = lr
