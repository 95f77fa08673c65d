"""The step plan: what the regularizers add to one custom layer's recurrence for one forward.

Regularizers fill a `StepPlan` (models/variants/base.py, `plan_steps`); the cells read it at
every step (models/cells.py) and the speed layer moves it through compiled chunks and CUDA
graphs (models/speed/). Each field declares its kind once, where it is defined (`FieldKind`), and
the field lists the rest of the code walks (`STEP_NORMS`, `PER_STEP_FIELDS`, `STEP_TENSORS`)
are derived from those declarations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Literal

from torch import Tensor

Stats = tuple[Tensor, Tensor]
PerStep = Sequence[Tensor] | Tensor | float


@dataclass
class Norm:
    """A normalization of a (B, F) term at every step, with gain `weight` and shift `bias`.

    'layer': statistics over the features of each example (Ba et al. 2016). 'batch':
    statistics over the batch at each step (Cooijmans et al. 2017); in training the batch's own
    (returned so the owner can update its running averages through `update`), at eval the
    per-step running averages in `stats`.
    """

    kind: Literal["layer", "batch"]
    weight: Tensor
    bias: Tensor | None
    eps: float = 1e-5
    stats: Sequence[Stats] | None = None
    update: Callable[[Tensor, Tensor, int | Tensor], None] | None = None


class FieldKind(Enum):
    """How a plan field is given, and so how a window of steps (`StepPlan.window`) and a
    recorded CUDA graph (models/speed/graphs.py) treat it."""

    FIXED = "fixed"  # the walk's layout and flags: the same in every window
    TENSOR = "tensor"  # one tensor read at every step (may take gradients): kept
    PER_STEP = "per_step"  # one tensor per step, one shared tensor, or a rate: sliced
    PROBES = "probes"  # W_hh's per-step gradient probes: sliced; never recorded
    NORM = "norm"  # a `Norm` applied inside the step: its running statistics sliced
    SETUP = "setup"  # read before the loop only: left at its default in a window

    @property
    def meta(self) -> dict[str, FieldKind]:
        """The dataclass field metadata that declares a field of this kind."""
        return {"kind": self}


@dataclass
class StepPlan:
    """The per-step terms regularizers add to one layer's recurrence for one forward pass.

    Zoneout fields hold per-step Bernoulli masks in training and the rate itself at eval
    (the expectation); masks in `update_masks` and `hidden_mask` are inverted-dropout masks.
    A per-step field holds a sequence with one tensor per step, or one tensor (or rate) that
    applies at every step. `input_norm(W_ih x, b_ih, valid)` normalizes the input projection of all
    steps at once, before the loop, and adds the cell's input bias in the same pass;
    `step_input_norm` normalizes it one step at a time inside the loop instead (per-step batch
    statistics, which then fuse with the step's other work), its shift including b_ih;
    `sum_norm` (tanh-RNN) normalizes W_ih x + W_hh h, and the biases are added after it.
    `compiled` says that this forward's steps run compiled, so hoisted work may be too.
    With `input_weight` set, the walk is given the raw inputs x_t (few features) and each step
    computes W_ih x_t (+ `input_bias`) itself, as pointwise work (models/speed/projection.py).
    `weight_probes` are the zero probes z_t added to each step's W_hh product, which then
    uses a detached W_hh (models/speed/weight_grad.py). `valid` holds, in a padded batch whose
    steps batch-normalize, each step's (B, 1) mask of the sequences still running, over which
    the batch statistics are taken.
    """

    cell: str = field(metadata=FieldKind.FIXED.meta)
    steps: int = field(metadata=FieldKind.FIXED.meta)
    batch: int = field(metadata=FieldKind.FIXED.meta)
    hidden: int = field(metadata=FieldKind.FIXED.meta)
    like: Tensor = field(metadata=FieldKind.FIXED.meta)
    hidden_mask: Tensor | None = field(default=None, metadata=FieldKind.TENSOR.meta)
    weight_probes: Sequence[Tensor] | None = field(default=None, metadata=FieldKind.PROBES.meta)
    update_masks: PerStep | None = field(default=None, metadata=FieldKind.PER_STEP.meta)
    zone_h: PerStep | None = field(default=None, metadata=FieldKind.PER_STEP.meta)
    zone_c: PerStep | None = field(default=None, metadata=FieldKind.PER_STEP.meta)
    compiled: bool = field(default=False, metadata=FieldKind.FIXED.meta)
    input_norm: Callable[..., Tensor] | None = field(default=None, metadata=FieldKind.SETUP.meta)
    step_input_norm: Norm | None = field(default=None, metadata=FieldKind.NORM.meta)
    hidden_norm: Norm | None = field(default=None, metadata=FieldKind.NORM.meta)
    cell_norm: Norm | None = field(default=None, metadata=FieldKind.NORM.meta)
    sum_norm: Norm | None = field(default=None, metadata=FieldKind.NORM.meta)
    input_weight: Tensor | None = field(default=None, metadata=FieldKind.TENSOR.meta)
    input_bias: Tensor | None = field(default=None, metadata=FieldKind.TENSOR.meta)
    valid: Sequence[Tensor] | None = field(default=None, metadata=FieldKind.PER_STEP.meta)
    owners: dict[str, str] = field(default_factory=dict, metadata=FieldKind.SETUP.meta)

    def set(self, name: str, value: object, owner: str) -> None:
        """Set one field; two regularizers may not claim the same one."""
        if getattr(self, name) is not None:
            raise ValueError(f"{owner} and {self.owners[name]} both set the step plan's {name}")
        setattr(self, name, value)
        self.owners[name] = owner

    def shape(self) -> tuple[int, int, int]:
        return (self.steps, self.batch, self.hidden)

    def window(self, start: int, stop: int) -> StepPlan:
        """The plan for steps [start, stop): per-step sequences sliced, the rest shared, and
        what the steps do not read (setup fields, running-average updates) left out."""

        def cut(value: object) -> object:
            return value[start:stop] if isinstance(value, (list, tuple)) else value

        changes: dict[str, object] = {"steps": stop - start}
        for spec in dataclasses.fields(self):
            kind, value = spec.metadata["kind"], getattr(self, spec.name)
            if kind in (FieldKind.PER_STEP, FieldKind.PROBES):
                changes[spec.name] = cut(value)
            elif kind is FieldKind.NORM and value is not None:
                changes[spec.name] = replace(value, stats=cut(value.stats), update=None)
            elif kind is FieldKind.SETUP:
                changes[spec.name] = _default(spec)
        return replace(self, **changes)


def _default(spec: dataclasses.Field) -> object:
    if spec.default_factory is not dataclasses.MISSING:
        return spec.default_factory()
    return spec.default


def fields_of(kind: FieldKind) -> tuple[str, ...]:
    """The names of the plan's fields of `kind`, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(StepPlan) if f.metadata["kind"] is kind)


STEP_NORMS = fields_of(FieldKind.NORM)
PER_STEP_FIELDS = fields_of(FieldKind.PER_STEP)
STEP_TENSORS = fields_of(FieldKind.TENSOR)


def at(value: PerStep | None, t: int) -> Tensor | float | None:
    """The value of a per-step field at step t (a shared tensor or rate applies to all)."""
    if value is None or isinstance(value, (float, Tensor)):
        return value
    return value[t]
