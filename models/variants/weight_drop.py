"""Weight-drop: DropConnect on the hidden-to-hidden matrix (Merity et al. 2017, Sec. 2).

U^i, U^f, U^o, U^c (PyTorch's W_hh) are dropped elementwise with probability p and scaled by
1/(1 − p) once per forward pass, as awd-lstm-lm's `WeightDrop` does (dropout on
`weight_hh_l0`): one mask for all time steps and every sequence of the batch. The recurrence
keeps its form, so the fused kernel runs with the dropped matrix passed in functionally. Off
at eval.
"""

from __future__ import annotations

from torch import Tensor

from regbench.models.variants.base import Regularizer
from regbench.models.variants.masks import dropout


class WeightDrop(Regularizer):
    key = "weight_drop"
    version = 2  # 2: masks from k random bits (see variants/masks.py)
    citation = "Merity et al. 2017, Sec. 2"
    claims = ("recurrent_weight",)
    defaults = {"p_weight": 0.5}

    def recurrent_weight(self, weight: Tensor, layer: int) -> Tensor:
        p = self.params["p_weight"]
        if p == 0.0 or not self.training:
            return weight
        return dropout(weight, p)
