"""Recurrent batch normalization (Cooijmans et al. 2017, Sec. 3, eqs. (6)–(8)).

    (f̃, ĩ, õ, g̃) = BN(W_h h_{t−1}; γ_h, 0) + BN(W_x x_t; γ_x, 0) + b
    c_t = σ(f̃) ⊙ c_{t−1} + σ(ĩ) ⊙ tanh(g̃)
    h_t = σ(õ) ⊙ tanh(BN(c_t; γ_c, β_c))

Each BN keeps separate statistics per time step (shared γ, β; see norms.py): minibatch
statistics in training, running averages at eval. Sequences longer than the longest training
sequence (T_max) reuse the statistics of T_max at eval. β_h = β_x = 0 (b models the bias, here
PyTorch's b_ih + b_hh); β_c is learned; all γ start at 0.1 (Sec. 4–5). W_x x is computed for
all steps before the loop; its per-step BN runs inside the loop, where a compiled chunk fuses it
with the step's other pointwise work. Defined for the LSTM, as in the paper. Step t counts
from the start of each forward: with truncated BPTT every window of a long sequence uses the
statistics of positions 0 … window−1, as when each window is a sequence of its own. Padded
batches: see norms.py.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from regbench.models.plan import StepPlan
from regbench.models.variants.base import LayerDims, Regularizer
from regbench.models.variants.norms import StepBatchNorm


class RecurrentBatchNorm(Regularizer):
    key = "recurrent_bn"
    version = 5  # 2: products reordered; 3: padded batches; 4: γ kept under uniform init;
    # 5: a step takes its own batch statistics only where at least 8 sequences run
    citation = "Cooijmans et al. 2017, Sec. 3, eqs. (6)–(8)"
    cells = ("lstm",)
    claims = ("input_norm", "hidden_norm", "cell_norm")
    defaults = {"gamma": 0.1}

    def bind(self, layers: Sequence[LayerDims]) -> None:
        gamma = self.params["gamma"]
        self.norms = nn.ModuleList(
            nn.ModuleDict(
                {
                    "x": StepBatchNorm(d.gate_size, gamma, shift=False),
                    "h": StepBatchNorm(d.gate_size, gamma, shift=False),
                    "c": StepBatchNorm(d.hidden_size, gamma, shift=True),
                }
            )
            for d in layers
        )

    @property
    def custom_cell(self) -> bool:
        return True

    def plan_steps(self, plan: StepPlan, layer: int) -> None:
        norms = self.norms[layer]
        plan.set("step_input_norm", norms["x"].step_norm(plan.steps), self.key)
        plan.set("hidden_norm", norms["h"].step_norm(plan.steps), self.key)
        plan.set("cell_norm", norms["c"].step_norm(plan.steps), self.key)
