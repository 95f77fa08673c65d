"""Where a custom cell's input projection W_ih x (+ b) is computed: hoisted or in the step.

Hoisted, it is one product over all steps before the loop (in oneDNN on the CPU,
models/speed/gemm.py), followed by the plan's input norm if it has one. Compiled CPU steps
with at most IN_STEP_FEATURES input features compute W_ih x_t themselves instead: there the
projection is a few multiply-adds per gate fused into the step's pointwise kernel, while
hoisted it writes, and backpropagates through, a (T, B, G) tensor that at one feature per step
(sequential MNIST) is G times larger than the input, and an MKL product with K = 1
(results/perf/README.md, "Input projection in the step").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from regbench.models.plan import StepPlan
from regbench.models.speed.gemm import linear

# Up to this many input features, compiled CPU steps compute W_ih x_t themselves.
IN_STEP_FEATURES = 8


@dataclass(frozen=True)
class InputProjection:
    """The input term a layer asks for: W_ih x + `bias` (None when the step adds the bias
    itself), through `norm(W_ih x, bias, valid)` when the plan normalizes it before the loop."""

    weight: Tensor
    bias: Tensor | None
    norm: Callable[..., Tensor] | None = None


def project_in_step(x: Tensor, plan: StepPlan) -> bool:
    """Whether the steps compute W_ih x_t (+ b) themselves instead of taking a hoisted (T, B, G)
    projection: compiled steps on the CPU with at most IN_STEP_FEATURES input features."""
    small = x.shape[-1] <= IN_STEP_FEATURES and x.device.type == "cpu"
    return small and plan.compiled


def project(
    x: Tensor, projection: InputProjection, plan: StepPlan, valid: Tensor | None = None
) -> Tensor:
    """What the walk is given for inputs `x` (T, B, F): the hoisted projection (T, B, G), or
    `x` itself with the plan set to project in the step (`input_weight`, `input_bias`).
    `valid` (T, B, 1) marks the steps an input norm's statistics count."""
    weight, bias = projection.weight, projection.bias
    if projection.norm is not None:
        return projection.norm(linear(x, weight), bias, valid)
    if project_in_step(x, plan):
        plan.input_weight, plan.input_bias = weight, bias
        return x
    return linear(x, weight, bias)
