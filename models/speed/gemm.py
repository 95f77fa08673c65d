"""Matrix products of the custom cells in oneDNN on the CPU: W_ih x and W_hh's gradient.

PyTorch's x86 wheels run float32 `F.linear` through MKL, whose AVX-512 kernels are chosen
only on Intel CPUs; on AMD hosts it takes an AVX2 path. oneDNN, which `nn.LSTM` uses for the
whole fused recurrence, picks AVX-512 by CPU features, and on an AMD host runs the custom
cells' large products about twice as fast (results/perf/README.md, "oneDNN products"). So
`linear` runs the forward and both backward products in oneDNN's float32 GEMM (IEEE float32,
no reduced precision), and is `F.linear` elsewhere: CUDA, other dtypes, builds without oneDNN
or with it switched off (`torch.backends.mkldnn.flags(enabled=False)`), and inputs with fewer
than MIN_FEATURES features. On Intel hosts the two libraries are about equally fast.

Users: the custom cells' hoisted input projection (models/speed/projection.py) and W_hh's
one-product gradient (models/speed/weight_grad.py). Both run outside the compiled step chunks, where
Inductor's own lowering of this op assumes frozen inference weights. The backward is not
differentiable again (`once_differentiable`): a second-order gradient raises.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


@functools.cache
def _onednn_linear() -> Callable[..., Tensor] | None:
    """oneDNN's dense-tensor linear (a (M, K), w (N, K), optional bias → a wᵀ + b), or None."""
    if not torch.backends.mkldnn.is_available():
        return None
    op = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)
    return None if op is None else op.default


def _mm_t(a: Tensor, w: Tensor, bias: Tensor | None = None) -> Tensor:
    """a @ wᵀ (+ bias) in oneDNN; a (M, K) and w (N, K), strided views allowed (transposed
    views cost no copy, and were faster than contiguous copies)."""
    op = _onednn_linear()
    assert op is not None, "callers check _onednn_float32 first"
    return op(a, w, bias, "none", [None], "")


class _OneDnnLinear(torch.autograd.Function):
    """y = x Wᵀ + b with every product in oneDNN: ∂x = g W, ∂W = gᵀ x, ∂b = Σ g."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        rows = x.reshape(-1, x.shape[-1])
        ctx.save_for_backward(rows, weight)
        ctx.input_shape = x.shape
        ctx.has_bias = bias is not None
        out = _mm_t(rows, weight, bias)
        return out.reshape(*x.shape[:-1], weight.shape[0])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        rows, weight = ctx.saved_tensors
        grad_rows = grad.reshape(-1, grad.shape[-1])
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = _mm_t(grad_rows, weight.t()).reshape(ctx.input_shape)
        if ctx.needs_input_grad[1]:
            grad_w = weight_grad(grad_rows, rows)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_rows.sum(0)
        return grad_x, grad_w, grad_b


# With one input feature oneDNN is the slower library, from a few features on the faster one
# (results/perf/README.md); 16 is conservative, and lowering it would change the quick grid's
# numerics (8 and 2 features), which waits for a stop that reruns it.
MIN_FEATURES = 16


def _onednn_float32(*tensors: Tensor | None) -> bool:
    """CPU float32 tensors (None skipped), and oneDNN available and switched on."""
    given = [t for t in tensors if t is not None]
    cpu_float = all(t.device.type == "cpu" and t.dtype == torch.float32 for t in given)
    return cpu_float and torch.backends.mkldnn.enabled and _onednn_linear() is not None


def uses_onednn(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> bool:
    """Whether `linear(x, weight, bias)` runs in oneDNN: CPU float32, oneDNN available and
    on, and at least MIN_FEATURES input features."""
    return weight.shape[-1] >= MIN_FEATURES and _onednn_float32(x, weight, bias)


def weight_grad(grad_rows: Tensor, input_rows: Tensor) -> Tensor:
    """gradᵀ · inputs, the (N, K) weight gradient of y = x Wᵀ summed over M rows, from
    grad (M, N) and inputs (M, K); in oneDNN on the CPU in float32."""
    if _onednn_float32(grad_rows, input_rows):
        # As (inputsᵀ grad)ᵀ, the fastest layout tried; the result is a transposed view,
        # which autograd copies into the parameter's layout ((N, K) floats, a small cost).
        return _mm_t(input_rows.t(), grad_rows.t()).t()
    return grad_rows.t() @ input_rows


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """`F.linear(x, weight, bias)`, in oneDNN on the CPU (see the module docstring)."""
    if not uses_onednn(x, weight, bias):
        return F.linear(x, weight, bias)
    return _OneDnnLinear.apply(x, weight, bias)
