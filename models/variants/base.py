"""The regularizer interface: one small module per paper, called by the network at fixed sites.

A network (models/network.py) runs: embedding → [site "input"] → layer 1 → [site "hidden"] →
… → layer L → [site "output"] → head. A regularizer may act at any of these points:

- `embed`: look up the (T, B) tokens itself (embedding dropout);
- `at_site`: transform the (T, B, F) activations at a site (Zaremba, locked, variational);
- `recurrent_weight`: rewrite W_hh for one forward (weight-drop / DropConnect);
- `plan_steps`: fill the StepPlan of a layer's recurrence (zoneout, variational h, Semeniuta,
  normalization); `custom_cell` says when that is needed, since the fused cuDNN/oneDNN
  kernel cannot express it (at rate 0 it is not, and the fused kernel runs: a rate of 0
  reproduces `none` exactly);
- `penalty`: add a term to the training loss (AR/TAR).

Every hook is the identity by default, so variants compose by listing several regularizers.
`claims` names the parts of the network a regularizer changes; two regularizers that claim
the same part cannot be composed. Regularizers with parameters of their own (normalization
gains) create them per layer in `bind`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from torch import Tensor, nn

from regbench.models.plan import StepPlan

Site = Literal["input", "hidden", "output"]
CELLS = ("lstm", "gru", "rnn")


@dataclass(frozen=True)
class LayerDims:
    """The sizes of one recurrent layer, for regularizers that own per-layer parameters."""

    cell: str
    input_size: int
    hidden_size: int
    gates: int

    @property
    def gate_size(self) -> int:
        return self.gates * self.hidden_size


class Regularizer(nn.Module):
    """Base class; subclasses set the class attributes and override the hooks they need."""

    key: ClassVar[str]
    version: ClassVar[int] = 1
    citation: ClassVar[str] = ""
    cells: ClassVar[tuple[str, ...]] = CELLS
    claims: ClassVar[tuple[str, ...]] = ()
    needs_tokens: ClassVar[bool] = False
    defaults: ClassVar[Mapping[str, Any]] = {}
    choices: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    def __init__(self, **params: Any) -> None:
        super().__init__()
        self.params = {**self.defaults, **params}

    def bind(self, layers: Sequence[LayerDims]) -> None:
        """Create per-layer parameters, if any (called once by the network)."""

    @property
    def custom_cell(self) -> bool:
        """Whether this forward needs the custom recurrence (some plan field is non-trivial)."""
        return False

    def embed(self, tokens: Tensor, weight: Tensor) -> Tensor | None:
        """Embedding vectors of time-major (T, B) `tokens`, or None for the plain lookup."""
        return None

    def at_site(self, x: Tensor, site: Site, layer: int) -> Tensor:
        """`x` is (T, B, F); `layer` is the index of the layer the site feeds (or follows)."""
        return x

    def recurrent_weight(self, weight: Tensor, layer: int) -> Tensor:
        return weight

    def plan_steps(self, plan: StepPlan, layer: int) -> None:
        """Add this regularizer's per-step terms to `plan` (shapes in plan.steps/batch/hidden)."""

    def penalty(
        self, outputs: Tensor, dropped: Tensor, lengths: Tensor | None = None
    ) -> Tensor | None:
        """A loss term from the last layer's outputs (T, B, H), before and after dropout;
        `lengths` (B,) the valid steps of each sequence in a padded batch."""
        return None

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.params.items())
