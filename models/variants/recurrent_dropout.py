"""Recurrent dropout without memory loss (Semeniuta, Severyn & Barth 2016, Sec. 3).

Only the cell update is dropped: LSTM c_t = f ⊙ c_{t−1} + i ⊙ d(g_t); GRU h_t =
(1 − z) ⊙ d(n_t) + z ⊙ h_{t−1}, with PyTorch's GRU candidate n. Since the memory c_{t−1}
(or h_{t−1}) is never dropped, nothing stored is lost. Masks are per step (`per_step: true`,
the setting of Wen et al. 2018's comparison) or one per sequence; inverted scaling in
training, so eval is the plain cell. For the tanh-RNN the update is the whole state, so
dropping it loses memory: the paper's idea is not defined there.
"""

from __future__ import annotations

import torch

from regbench.models.plan import StepPlan
from regbench.models.variants.base import Regularizer
from regbench.models.variants.masks import keep_mask


class RecurrentDropout(Regularizer):
    key = "recurrent_dropout"
    # 2: custom-cell products reordered (models/speed/gemm.py, models/speed/weight_grad.py)
    version = 3  # 3: masks from k random bits (variants/masks.py)
    citation = "Semeniuta et al. 2016, Sec. 3"
    cells = ("lstm", "gru")
    claims = ("update_masks",)
    defaults = {"p_update": 0.25, "per_step": True}

    @property
    def custom_cell(self) -> bool:
        return self.training and self.params["p_update"] > 0.0

    def plan_steps(self, plan: StepPlan, layer: int) -> None:
        p = self.params["p_update"]
        if p == 0.0 or not self.training:
            return
        if self.params["per_step"]:
            masks: list[torch.Tensor] | torch.Tensor = list(keep_mask(plan.shape(), p, plan.like))
        else:
            masks = keep_mask((plan.batch, plan.hidden), p, plan.like)
        plan.set("update_masks", masks, self.key)
