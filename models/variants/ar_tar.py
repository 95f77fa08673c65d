"""Activation and temporal activation regularization (Merity et al. 2017, Sec. 4.6).

AR = α · mean((m ⊙ h_t)²) on the last layer's output after its dropout, and
TAR = β · mean((h_t − h_{t+1})²) on the last layer's output before dropout — means of
squares over time, batch and units, as awd-lstm-lm computes them (the paper writes L2).
Added to the training loss only; defaults α = 2, β = 1. In a padded batch (variable
lengths) the means run over valid steps only, and TAR over pairs of valid steps. The penalty
takes the loss's reduction: with the mean cross-entropy the loss is CE + AR + TAR, as in
awd-lstm-lm; with `train.loss: sum_steps` (the cross-entropy summed over a window of T steps)
it is T · (CE + AR + TAR), so α and β weigh the same against the data term at any T
(models/module.py).

Both terms are one autograd node: the forward takes the step differences once and two dot
products; the backward writes each input's gradient in one pass,
∂AR/∂d = 2α d / N and ∂TAR/∂h_t = 2β (δ_{t−1} − δ_t) / N' with δ_t = h_{t+1} − h_t
(δ_{−1} = δ_{T−1} = 0). Composed from elementwise ops the penalty cost sequential MNIST
(T = 784) about 18 % of a training step. Second-order gradients are not supported (the
backward is `once_differentiable`).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from regbench.models.cells import valid_steps
from regbench.models.variants.base import Regularizer


def _square_sum(x: Tensor) -> Tensor:
    """Σ x², accumulated in float32 at least (a half-precision dot overflows at 65504)."""
    flat = x.reshape(-1)
    if flat.dtype in (torch.float16, torch.bfloat16):
        flat = flat.float()
    return torch.dot(flat, flat)


def _temporal_grad(steps: Tensor, scale: Tensor) -> Tensor:
    """scale · (δ_{t−1} − δ_t) for every t of (T, …) outputs, from δ = steps (T − 1, …)."""
    grad = steps.new_empty((steps.shape[0] + 1, *steps.shape[1:]))
    torch.sub(steps[:-1], steps[1:], out=grad[1:-1])
    torch.neg(steps[0], out=grad[0])
    grad[-1].copy_(steps[-1])
    return grad.mul_(scale)


class _ActivationPenalty(torch.autograd.Function):
    """α · mean(d²) + β · mean((h_{t+1} − h_t)²); `dropped` None means d = h."""

    @staticmethod
    def forward(
        ctx: FunctionCtx, outputs: Tensor, dropped: Tensor | None, alpha: float, beta: float
    ) -> Tensor:
        ar_input = outputs if dropped is None else dropped
        steps = outputs[1:] - outputs[:-1]
        ctx.ar_scale = 2.0 * alpha / ar_input.numel()
        ctx.tar_scale = 2.0 * beta / steps.numel()
        ctx.shared = dropped is None
        ctx.save_for_backward(ar_input, steps)
        value = alpha / ar_input.numel() * _square_sum(ar_input)
        return value + beta / steps.numel() * _square_sum(steps)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:
        ar_input, steps = ctx.saved_tensors
        grad_outputs = _temporal_grad(steps, grad * ctx.tar_scale)
        if ctx.shared:
            return grad_outputs.addcmul_(ar_input, grad * ctx.ar_scale), None, None, None
        return grad_outputs, ar_input * (grad * ctx.ar_scale), None, None


class ActivationRegularization(Regularizer):
    key = "ar_tar"
    version = 4  # 2: one fused autograd node; 3: padded batches; 4: scaled with a summed loss
    citation = "Merity et al. 2017, Sec. 4.6"
    claims = ("penalty",)
    defaults = {"alpha": 2.0, "beta": 1.0}

    def penalty(
        self, outputs: Tensor, dropped: Tensor, lengths: Tensor | None = None
    ) -> Tensor | None:
        if not self.training:
            return None
        alpha, beta = self.params["alpha"], self.params["beta"]
        if lengths is not None:
            return _padded_penalty(outputs, dropped, lengths, alpha, beta)
        if outputs.shape[0] < 2 or outputs.numel() == 0:  # no steps to difference
            return alpha * dropped.pow(2).mean()
        shared = None if dropped is outputs else dropped
        return _ActivationPenalty.apply(outputs, shared, alpha, beta)


def _padded_penalty(
    outputs: Tensor, dropped: Tensor, lengths: Tensor, alpha: float, beta: float
) -> Tensor:
    """AR and TAR of a padded batch, (T, B, H) with valid lengths (B,): the means run over
    valid steps only, and TAR over pairs of consecutive valid steps, so padding changes
    nothing (composed from elementwise ops: variable-length batches are short)."""
    valid = valid_steps(lengths, outputs.shape[0], outputs.device)
    pairs = valid[1:]  # step t+1 valid: t is too
    width = outputs.shape[-1]
    ar = _square_sum(torch.where(valid, dropped, 0)) / _entries(valid, width)
    tar = _square_sum(torch.where(pairs, outputs[1:] - outputs[:-1], 0)) / _entries(pairs, width)
    return alpha * ar + beta * tar


def _entries(mask: Tensor, width: int) -> Tensor:
    """How many entries a (…, 1) mask marks across `width` features, in float32, at least 1."""
    return (mask.sum(dtype=torch.float32) * width).clamp_min(1)
