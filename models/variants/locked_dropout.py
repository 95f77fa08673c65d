"""Merity, Keskar & Socher 2017 (AWD-LSTM), Sec. 4.2: locked (variational) dropout.

One dropout mask per sequence and feature, shared by all time steps, on the inputs of every
layer (`p_input` on the embedding, `p_hidden` between layers) and on the top output
(`p_output`); unlike Gal's variational dropout, not on h_{t−1}, so the recurrence is untouched
and the fused cuDNN/oneDNN kernel runs. Defaults are AWD's PTB rates (0.4, 0.3, 0.4).
"""

from __future__ import annotations

from torch import Tensor

from regbench.models.variants.base import Regularizer, Site
from regbench.models.variants.masks import locked


class LockedDropout(Regularizer):
    key = "locked_dropout"
    version = 2  # 2: masks from k random bits (see variants/masks.py)
    citation = "Merity et al. 2017, Sec. 4.2"
    claims = ("sites",)
    defaults = {"p_input": 0.4, "p_hidden": 0.3, "p_output": 0.4}

    def at_site(self, x: Tensor, site: Site, layer: int) -> Tensor:
        p = self.params[f"p_{site}"]
        if p == 0.0 or not self.training:
            return x
        return locked(x, p)
