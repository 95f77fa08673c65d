"""The speed layer's entry point: one custom layer's walk over its steps, by the fastest path.

`walk_custom` takes what the layer decided (the plan, the input projection's terms, the
recurrent weights) and chooses how to compute it: the input projection hoisted in oneDNN or
inside the step (projection.py), W_hh's gradient as one product over all steps
(weight_grad.py), and the steps eagerly, as compiled chunks (steps.py) or replayed from CUDA
graphs (graphs.py). Every path computes the same numbers up to floating-point reassociation.
"""

from __future__ import annotations

from torch import Tensor, nn

from regbench.models.cells import State, Walk
from regbench.models.plan import StepPlan
from regbench.models.speed.graphs import graphable, graphed_walk
from regbench.models.speed.projection import InputProjection, project
from regbench.models.speed.steps import StepMode, walk
from regbench.models.speed.weight_grad import RecurrentWeightGrad, pays_off


def walk_custom(
    owner: nn.Module,
    x: Tensor,
    state: State,
    projection: InputProjection,
    w_hh: Tensor,
    b_hh: Tensor,
    plan: StepPlan,
    valid: Tensor | None,
    mode: StepMode,
    chunk: int,
) -> Walk:
    """Walk inputs `x` (T, B, F) from `state` through the cell `plan.cell` with recurrent
    weights `w_hh`, `b_hh` and the plan's per-step terms, in step `mode` with chunks of about
    `chunk` steps. `owner` (the layer) keeps the CUDA graphs recorded for it; it records only
    in training. `valid` (T, B, 1) marks the steps an input norm's statistics count."""
    gx = project(x, projection, plan, valid)
    probe = None
    if pays_off(w_hh, plan.batch, plan.compiled):
        probe = RecurrentWeightGrad()
        plan.weight_probes, w_hh = probe.probes(w_hh, plan.steps, plan.batch), w_hh.detach()
    if mode == "graph" and owner.training and graphable(gx, plan):
        walked = graphed_walk(owner, gx, state, w_hh, b_hh, plan, chunk)
    else:
        walked = walk(plan.cell, gx.unbind(0), state, w_hh, b_hh, plan, mode, chunk)
    if probe is not None:
        probe.record(state[0], walked.outputs, plan.hidden_mask)
    return walked
