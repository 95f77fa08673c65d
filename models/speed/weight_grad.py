"""W_hh's gradient in a custom cell as one matrix product over all steps.

Backpropagating through T per-step products W_hh h̃_{t-1} sums ∂L/∂W_hh = Σ_t g_tᵀ h̃_{t-1}
(g_t = ∂L/∂(W_hh h̃_{t-1}), h̃_{t-1} the recurrent input after any hidden mask) as T small
(G×B)·(B×H) products inside the backward steps. Here the steps multiply by a detached W_hh
and add a zero probe z_t to the product. The probe's gradient is g_t, so once the backward
has passed every step, W_hh's gradient is one (G×TB)·(TB×H) product Gᵀ H̃, as cuDNN and
oneDNN compute it for their fused kernels; on the CPU it runs in oneDNN
(models/speed/gemm.py). The gradient is the same sum, in another order (rounding-level
differences).

It is taken where it was measured to pay (results/perf/README.md, "W_hh's gradient as one
product"), on the CPU: compiled steps (where adding z_t fuses into the step's pointwise
kernel), batches ≤ MAX_BATCH and hidden sizes ≥ MIN_HIDDEN. With larger batches the per-step
products are larger, and the zero probes and their gradients, (T, B, G) each, cost more than
one product saves. It is kept to compiled steps, the path long runs take (step mode 'auto'),
so the eager fallback stays the plain per-step walk. Not measured on CUDA, so not taken
there. H̃, (T, B, H), lives as long as the graph, like the steps' saved tensors.
"""

from __future__ import annotations

import torch
from torch import Tensor

from regbench.models.speed.gemm import weight_grad

MAX_BATCH = 32  # between the batch sizes where it paid and where it lost
MIN_HIDDEN = 128  # between the hidden sizes where it paid and where it lost


def pays_off(weight: Tensor, batch: int, compiled: bool) -> bool:
    """Whether to take W_hh's gradient as one product: compiled training steps on the CPU,
    a small batch and a hidden size that is not small."""
    sized = batch <= MAX_BATCH and weight.shape[1] >= MIN_HIDDEN
    wanted = compiled and sized and weight.device.type == "cpu"
    return wanted and torch.is_grad_enabled() and weight.requires_grad


class RecurrentWeightGrad:
    """One layer's forward: hands out the probes z_t, then keeps the recurrent inputs H̃.

    It holds no probe itself: the probes' graph node holds it, and a reference back to the
    node's outputs would make a cycle that keeps the whole graph alive."""

    def __init__(self) -> None:
        self.inputs: Tensor | None = None

    def probes(self, weight: Tensor, steps: int, batch: int) -> list[Tensor]:
        """The zero probes z_t, (B, G) each, whose gradients become W_hh's."""
        return list(_Probe.apply(weight, self, steps, batch).unbind(0))

    def record(self, initial: Tensor, outputs: Tensor, mask: Tensor | None) -> None:
        """Keep H̃ = (h_0, …, h_{T-1}) ⊙ mask from the initial state and the walk's outputs."""
        previous = torch.cat([initial.detach().unsqueeze(0), outputs[:-1].detach()])
        self.inputs = previous if mask is None else previous * mask.detach()


class _Probe(torch.autograd.Function):
    """Zeros (T, B, G) whose gradient G becomes the weight's gradient Gᵀ H̃."""

    @staticmethod
    def forward(ctx, weight: Tensor, owner: RecurrentWeightGrad, steps: int, batch: int) -> Tensor:
        ctx.owner = owner
        return weight.new_zeros(steps, batch, weight.shape[0])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None, None]:
        inputs = ctx.owner.inputs
        if inputs is None:
            raise RuntimeError("RecurrentWeightGrad: record() the walk before the backward")
        rows = inputs.reshape(-1, inputs.shape[-1])
        return weight_grad(grad.reshape(-1, grad.shape[-1]), rows), None, None, None
