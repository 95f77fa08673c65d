"""Activation and temporal activation regularization (Merity et al. 2017, Sec. 4.6).

AR = α · mean((m ⊙ h_t)²) on the last layer's output after its dropout, and
TAR = β · mean((h_t − h_{t+1})²) on the last layer's output before dropout — means of
squares over time, batch and units, as awd-lstm-lm computes them (the paper writes L2).
Added to the training loss only; defaults α = 2, β = 1.
"""

from __future__ import annotations

from torch import Tensor

from regbench.models.variants.base import Regularizer


class ActivationRegularization(Regularizer):
    key = "ar_tar"
    citation = "Merity et al. 2017, Sec. 4.6"
    claims = ("penalty",)
    defaults = {"alpha": 2.0, "beta": 1.0}

    def penalty(self, outputs: Tensor, dropped: Tensor) -> Tensor | None:
        if not self.training:
            return None
        ar = self.params["alpha"] * dropped.pow(2).mean()
        if outputs.shape[0] < 2:
            return ar
        return ar + self.params["beta"] * (outputs[1:] - outputs[:-1]).pow(2).mean()
