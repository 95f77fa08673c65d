"""Layer normalization in recurrent networks (Ba, Kiros & Hinton 2016).

LSTM (supplementary eqs. (20)–(22)) and GRU (the same scheme):
    gates = LN(W_h h_{t−1}; α1, β1) + LN(W_x x_t; α2, β2) + b
    h_t = σ(o) ⊙ tanh(LN(c_t; α3, β3))                          (LSTM only)
tanh-RNN (Sec. 3.1, eq. (4)): h_t = tanh(LN(W_hh h_{t−1} + W_xh x_t; g, 0) + b).

Statistics are over the units of each example at each step, identical in training and eval.
Gains start at 1 and shifts at 0 (the paper's text swaps the two, which would make LN output
a constant). W_x x is computed for all steps before the loop and LN'd per step inside it, where
a compiled chunk fuses the LN with the step's pointwise work; b_ih joins that LN's shift.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from regbench.models.plan import Norm, StepPlan
from regbench.models.variants.base import LayerDims, Regularizer


class GainShift(nn.Module):
    """The learned gain and shift of one layer normalization."""

    def __init__(self, features: int, shift: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(features))
        self.bias = nn.Parameter(torch.zeros(features)) if shift else None

    def norm(self) -> Norm:
        return Norm("layer", self.weight, self.bias)


class LayerNorm(Regularizer):
    key = "layer_norm"
    version = 3  # 2: custom-cell products reordered; 3: gains kept under uniform init
    citation = "Ba et al. 2016, Sec. 3.1 eq. (4); supplementary eqs. (20)–(22)"
    claims = ("input_norm", "hidden_norm", "cell_norm", "sum_norm")

    def bind(self, layers: Sequence[LayerDims]) -> None:
        self.norms = nn.ModuleList(self._layer_norms(d) for d in layers)

    @staticmethod
    def _layer_norms(d: LayerDims) -> nn.ModuleDict:
        if d.cell == "rnn":
            return nn.ModuleDict({"sum": GainShift(d.gate_size, shift=False)})
        norms = {"x": GainShift(d.gate_size), "h": GainShift(d.gate_size)}
        if d.cell == "lstm":
            norms["c"] = GainShift(d.hidden_size)
        return nn.ModuleDict(norms)

    @property
    def custom_cell(self) -> bool:
        return True

    def plan_steps(self, plan: StepPlan, layer: int) -> None:
        norms = self.norms[layer]
        if "sum" in norms:
            plan.set("sum_norm", norms["sum"].norm(), self.key)
            return
        plan.set("step_input_norm", norms["x"].norm(), self.key)
        plan.set("hidden_norm", norms["h"].norm(), self.key)
        if "c" in norms:
            plan.set("cell_norm", norms["c"].norm(), self.key)
