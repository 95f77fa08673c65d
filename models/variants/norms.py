"""Batch normalization with statistics per time step, shared by recurrent BN and BN-input.

Cooijmans et al. 2017, Sec. 3, eq. (5): BN(h; γ, β) = β + γ ⊙ (h − Ê[h]) / sqrt(Var[h] + ε),
with separate statistics for each time step t ≤ T_max and shared γ, β. In training the
minibatch statistics of step t are used and folded into running averages for step t (T_max
grows to the longest training sequence seen); at eval the running averages of step t are
used, and those of T_max for every t ≥ T_max. Per-step normalization runs inside the loop
(`step_norm`); `normalize_all` instead pools the statistics of all steps, once, before the
loop (Laurent et al. 2016's sequence-wise normalization), keeping a single running row. In a
padded batch (variable lengths) the minibatch statistics of step t are those of the sequences
still running at t, and the pooled ones those of the valid steps; the running averages count
the same rows, so what the padding holds changes nothing. Where fewer than eight sequences
run (the tail of a batch padded to its longest sequence), a step takes the whole batch's
statistics instead, padded rows included: the statistics of a few rows make the normalized
recurrence unstable (models/layer.py, `_valid_steps`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from regbench.models.cells import batch_moments
from regbench.models.plan import Norm


def _scale_shift(
    x: Tensor, mean: Tensor, var: Tensor, weight: Tensor, shift: Tensor, eps: float
) -> Tensor:
    """γ ⊙ (x − mean) / sqrt(var + ε) + shift."""
    return (x - mean) * torch.rsqrt(var + eps) * weight + shift


def _batch_norm(
    x: Tensor,
    weight: Tensor,
    shift: Tensor,
    eps: float,
    dims: tuple[int, ...],
    valid: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Batch norm of `x` with its own statistics over `dims` (the entries `valid` marks, if
    given): (output, mean, var)."""
    mean, var = batch_moments(x, valid, dims)
    return _scale_shift(x, mean, var, weight, shift, eps), mean, var


@functools.cache
def _compiled_batch_norm() -> Callable[..., tuple[Tensor, Tensor, Tensor]]:
    return torch.compile(_batch_norm, dynamic=False, fullgraph=True)


class StepBatchNorm(nn.Module):
    """Per-time-step BN over `features`, with gain initialised to `gamma` and an optional
    learned shift."""

    def __init__(
        self,
        features: int,
        gamma: float,
        shift: bool,
        momentum: float = 0.1,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.full((features,), gamma))
        self.bias = nn.Parameter(torch.zeros(features)) if shift else None
        self.register_buffer("running_mean", torch.zeros(0, features))
        self.register_buffer("running_var", torch.ones(0, features))

    @property
    def max_steps(self) -> int:
        """T_max: the number of steps with running statistics."""
        return self.running_mean.shape[0]

    def update(self, mean: Tensor, var: Tensor, batch: int | Tensor) -> None:
        """Fold (steps, F) minibatch statistics into the running averages of those steps;
        `batch` is the batch size, or in a padded batch (steps,) the number of rows each
        step's statistics counted (a tensor: the correction runs in float32, where a half
        precision count overflows)."""
        steps = mean.shape[0]
        self._grow(steps)
        m = self.momentum
        if isinstance(batch, Tensor):
            count = batch.reshape(-1, 1).float()
            unbiased = (var.float() * count / (count - 1).clamp_min(1)).to(var.dtype)
        else:
            unbiased = var * batch / max(batch - 1, 1)
        with torch.no_grad():
            self.running_mean[:steps].lerp_(mean, m)
            self.running_var[:steps].lerp_(unbiased, m)

    def _grow(self, steps: int) -> None:
        missing = steps - self.max_steps
        if missing > 0:
            features = self.running_mean.shape[1]
            like = self.running_mean
            self.running_mean = torch.cat([like, like.new_zeros(missing, features)])
            self.running_var = torch.cat([self.running_var, like.new_ones(missing, features)])

    def _running(self, steps: int) -> tuple[Tensor, Tensor]:
        """Running (mean, var) for steps 0 … steps−1, reusing T_max's beyond it."""
        index = torch.arange(steps, device=self.running_mean.device).clamp(max=self.max_steps - 1)
        return self.running_mean[index], self.running_var[index]

    def _use_batch_stats(self) -> bool:
        return self.training or self.max_steps == 0

    def normalize_all(
        self, x: Tensor, shift: Tensor, valid: Tensor | None = None, compiled: bool = False
    ) -> Tensor:
        """Normalize a (T, B, F) term with statistics pooled over all steps and the batch
        (input side, before the loop; in a padded batch over the valid steps, where the
        (T, B, 1) bool mask `valid` is set) and add `shift` (the cell's input bias) in the
        same pass; compiled, the statistics, the normalization and their backward fuse into a
        few passes over the term."""
        if self.bias is not None:
            shift = self.bias + shift
        if not self._use_batch_stats():
            mean, var = self._running(1)
            return _scale_shift(x, mean, var, self.weight, shift, self.eps)
        norm = _compiled_batch_norm() if compiled else _batch_norm
        y, mean, var = norm(x, self.weight, shift, self.eps, (0, 1), valid)
        if self.training:
            pooled = (stat.reshape(1, -1).detach() for stat in (mean, var))
            count = x.shape[0] * x.shape[1] if valid is None else valid.sum().reshape(1)
            self.update(*pooled, count)
        return y

    def step_norm(self, steps: int) -> Norm:
        """The per-step normalization for a term computed inside the recurrence."""
        if self._use_batch_stats():
            update = self.update if self.training else None
            return Norm("batch", self.weight, self.bias, self.eps, update=update)
        mean, var = self._running(steps)
        stats = list(zip(mean.unbind(0), var.unbind(0), strict=True))
        return Norm("batch", self.weight, self.bias, self.eps, stats=stats)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        stored = state_dict.get(prefix + "running_mean")
        if stored is not None:
            self._grow(stored.shape[0])
        super()._load_from_state_dict(state_dict, prefix, *args)
