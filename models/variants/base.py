"""The regularizer interface: one small module per paper, called by the network at fixed sites.

A network (models/network.py) runs: embedding → [site "input"] → layer 1 → [site "hidden"] →
… → layer L → [site "output"] → head. A regularizer may act at any of these points:

- `embedding_weight`: rewrite the embedding matrix for one forward (embedding dropout);
- `at_site`: transform the (T, B, F) activations at a site (Zaremba, locked, variational);
- `recurrent_weight`: rewrite W_hh for one forward (weight-drop / DropConnect);
- `plan_steps`: fill the StepPlan of a layer's recurrence (zoneout, variational h, Semeniuta,
  normalization); such a regularizer lists the fields in `plan_fields` and says through
  `custom_cell` when it needs them, since the fused cuDNN/oneDNN kernel cannot express them
  (at rate 0 it does not, and the fused kernel runs: rate 0 reproduces `none` exactly);
- `penalty`: add a term to the training loss (AR/TAR).

Every hook is the identity by default, so variants compose by listing several regularizers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from regbench.models.cells import StepPlan

Site = Literal["input", "hidden", "output"]
CELLS = ("lstm", "gru", "rnn")


class Regularizer(nn.Module):
    """Base class; subclasses set the class attributes and override the hooks they need."""

    key: ClassVar[str]
    version: ClassVar[int] = 1
    citation: ClassVar[str] = ""
    cells: ClassVar[tuple[str, ...]] = CELLS
    plan_fields: ClassVar[tuple[str, ...]] = ()
    needs_tokens: ClassVar[bool] = False
    defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        super().__init__()
        self.params = {**self.defaults, **params}

    @property
    def custom_cell(self) -> bool:
        """Whether this forward needs the custom recurrence (some plan field is non-trivial)."""
        return False

    def embedding_weight(self, weight: Tensor) -> Tensor:
        return weight

    def at_site(self, x: Tensor, site: Site, layer: int) -> Tensor:
        """`x` is (T, B, F); `layer` is the index of the layer the site feeds (or follows)."""
        return x

    def recurrent_weight(self, weight: Tensor, layer: int) -> Tensor:
        return weight

    def plan_steps(self, plan: StepPlan, layer: int) -> None:
        """Add this regularizer's per-step terms to `plan` (shapes in plan.steps/batch/hidden)."""

    def penalty(self, outputs: Tensor, dropped: Tensor) -> Tensor | None:
        """A loss term from the last layer's outputs (T, B, H), before and after dropout."""
        return None

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.params.items())


def keep_mask(shape: tuple[int, ...], p: float, like: Tensor) -> Tensor:
    """A Bernoulli(1 − p) mask scaled by 1/(1 − p) (inverted dropout), shaped `shape`."""
    if p >= 1.0:
        return torch.zeros(shape, dtype=like.dtype, device=like.device)
    return torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(1.0 - p) / (1.0 - p)
