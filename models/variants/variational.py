"""Gal & Ghahramani 2016, "A Theoretically Grounded Application of Dropout in RNNs", Sec. 4.1.

Eq. (7): the tied LSTM (i, f, o, g) = (σ, σ, σ, tanh)((x_t ∘ z_x, h_{t−1} ∘ z_h) · W), with the
masks z sampled once per sequence and reused at every time step: on each layer's input
(`p_input` on the first, `p_hidden` between layers), on the top output (`p_output`), and on the
recurrent state h_{t−1} before W_hh (`p_recurrent`). Masks differ across the sequences of a
batch and are resampled at every forward. We use the tied parameterisation (one mask on h for
all gates). At eval, the standard approximation (dropout off), not MC averaging. The
per-sequence mask on h_{t−1} rules out the fused kernel; at p_recurrent = 0 the fused kernel
runs (that is `locked_dropout`).
"""

from __future__ import annotations

from torch import Tensor

from regbench.models.plan import StepPlan
from regbench.models.variants.base import Regularizer, Site
from regbench.models.variants.masks import keep_mask, locked


class VariationalDropout(Regularizer):
    key = "variational"
    # 2: masks drawn as uniform < 1 − p;
    # 3: custom-cell products reordered (models/speed/gemm.py, models/speed/weight_grad.py)
    version = 4  # 4: masks from k random bits (see variants/masks.py)
    citation = "Gal & Ghahramani 2016, Sec. 4.1, eq. (7)"
    claims = ("sites", "hidden_mask")
    defaults = {"p_input": 0.35, "p_hidden": 0.35, "p_output": 0.35, "p_recurrent": 0.2}

    @property
    def custom_cell(self) -> bool:
        return self.training and self.params["p_recurrent"] > 0.0

    def at_site(self, x: Tensor, site: Site, layer: int) -> Tensor:
        p = self.params[f"p_{site}"]
        if p == 0.0 or not self.training:
            return x
        return locked(x, p)

    def plan_steps(self, plan: StepPlan, layer: int) -> None:
        p = self.params["p_recurrent"]
        if p > 0.0 and self.training:
            plan.set("hidden_mask", keep_mask((plan.batch, plan.hidden), p, plan.like), self.key)
