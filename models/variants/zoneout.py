"""Krueger et al. 2017, "Zoneout: Regularizing RNNs by Randomly Preserving Hidden Activations".

Each unit keeps its previous value with probability z (Sec. 3.2, zoneout in LSTMs):

    c_t = d^c_t ⊙ c_{t−1} + (1 − d^c_t) ⊙ (f_t ⊙ c_{t−1} + i_t ⊙ g_t)
    h_t = d^h_t ⊙ h_{t−1} + (1 − d^h_t) ⊙ (o_t ⊙ tanh(f_t ⊙ c_{t−1} + i_t ⊙ g_t))

with separate per-unit, per-step Bernoulli masks d^c ~ B(z_c) and d^h ~ B(z_h), unscaled; h_t
uses the un-zoned new cell. At eval the masks are replaced by their expectation (Sec. 1),
h_t = z_h h_{t−1} + (1 − z_h) h̃_t. GRU and tanh-RNN carry h only: z_h applies, z_c is ignored.

`masks: shared` draws one mask per step for c and h, d^c_t = d^h_t (needs z_c = z_h):
Krueger et al.'s permuted-MNIST setting (Table 2; their README: "zoneout probability 0.15 on
both cells and states", and their pMNIST code feeds the states' mask to the cells too).
`separate` (the default) is Sec. 3.2's.
"""

from __future__ import annotations

import torch

from regbench.models.plan import StepPlan
from regbench.models.variants.base import Regularizer
from regbench.models.variants.masks import bernoulli_mask


class Zoneout(Regularizer):
    key = "zoneout"
    # 2: masks drawn as uniform < z;
    # 3: custom-cell products reordered (models/speed/gemm.py, models/speed/weight_grad.py)
    version = 4  # 4: masks from k random bits (see variants/masks.py)
    citation = "Krueger et al. 2017, Sec. 3.2"
    claims = ("zone_h", "zone_c")
    defaults = {"z_c": 0.5, "z_h": 0.05, "masks": "separate"}
    choices = {"masks": ("separate", "shared")}
    added_params = ("masks",)  # at "separate" it is left out of a config (config.py)

    @property
    def custom_cell(self) -> bool:
        return self.params["z_c"] > 0.0 or self.params["z_h"] > 0.0

    def plan_steps(self, plan: StepPlan, layer: int) -> None:
        if self.params["masks"] == "shared" and plan.cell == "lstm":
            rate = self.params["z_h"]
            if rate > 0.0:
                masks = self._masks(plan, rate)
                plan.set("zone_h", masks, self.key)
                plan.set("zone_c", masks, self.key)
            return
        for state, rate in (("h", self.params["z_h"]), ("c", self.params["z_c"])):
            if rate > 0.0 and (state == "h" or plan.cell == "lstm"):
                plan.set(f"zone_{state}", self._masks(plan, rate), self.key)

    def _masks(self, plan: StepPlan, rate: float) -> list[torch.Tensor] | float:
        if not self.training:
            return rate
        return list(bernoulli_mask(plan.shape(), rate, plan.like).unbind(0))
