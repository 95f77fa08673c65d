"""Batch-normalized RNNs with BN on the input-to-hidden transform only (Laurent et al. 2016).

    h_t = φ(BN(W_x x_t) + W_h h_{t−1})        (LSTM and GRU: the gates' input term)

The recurrent term is not normalized (the paper found that it did not help). Statistics are
"frame-wise" (per time step, over the batch; `statistics: frame`, the default) or
"sequence-wise" (over batch and time; `statistics: sequence`); running averages at eval, γ
starts at 1 and the shift is the cell's bias. W_x x is computed for all steps before the loop;
frame-wise BN then runs per step inside it (fused with the step's work when compiled), and
sequence-wise BN over the hoisted term at once. Section and equation numbers of the paper were
not available to us; the formula is the one its abstract and later surveys state.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from torch import nn

from regbench.models.plan import StepPlan
from regbench.models.variants.base import LayerDims, Regularizer
from regbench.models.variants.norms import StepBatchNorm


class InputBatchNorm(Regularizer):
    key = "bn_input"
    version = 5  # 2: products reordered; 3: padded batches; 4: γ kept under uniform init;
    # 5: a step takes its own batch statistics only where at least 8 sequences run
    citation = "Laurent et al. 2016"
    claims = ("input_norm",)
    defaults = {"gamma": 1.0, "statistics": "frame"}
    choices = {"statistics": ("frame", "sequence")}

    def bind(self, layers: Sequence[LayerDims]) -> None:
        self.norms = nn.ModuleList(
            StepBatchNorm(d.gate_size, self.params["gamma"], shift=False) for d in layers
        )

    @property
    def custom_cell(self) -> bool:
        return True

    def plan_steps(self, plan: StepPlan, layer: int) -> None:
        norm = self.norms[layer]
        if self.params["statistics"] == "frame":
            plan.set("step_input_norm", norm.step_norm(plan.steps), self.key)
        else:
            plan.set("input_norm", partial(norm.normalize_all, compiled=plan.compiled), self.key)
