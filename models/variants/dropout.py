"""Zaremba, Sutskever & Vinyals 2014, "Recurrent Neural Network Regularization", Sec. 3.2.

Dropout D(·) only on the non-recurrent connections, (i, f, o, g) = T(D(h_t^{l−1}), h_{t−1}^l):
the input of every layer (the embedding included) and the top layer's output before the
softmax; never on h_{t−1}. Masks are fresh at every time step and element. At eval dropout is
off (inverted scaling in training). The recurrence is untouched, so the fused cuDNN/oneDNN
kernel runs.
"""

from __future__ import annotations

from torch import Tensor

from regbench.models.variants.base import Regularizer, Site
from regbench.models.variants.masks import dropout


class ZarembaDropout(Regularizer):
    key = "dropout"
    version = 3  # 2: uniform < 1 − p; 3: masks from k random bits (variants/masks.py)
    citation = "Zaremba et al. 2014, Sec. 3.2"
    claims = ("sites",)
    defaults = {"p_input": 0.5, "p_hidden": 0.5, "p_output": 0.5}

    def at_site(self, x: Tensor, site: Site, layer: int) -> Tensor:
        p = self.params[f"p_{site}"]
        if p == 0.0 or not self.training:
            return x
        return dropout(x, p)
