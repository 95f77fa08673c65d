"""Custom recurrent cells for the regularizers that change the recurrence itself.

The layout follows ../shared/notes/fast-rnn-cells.md: the input projection W_ih x (and any
input-side normalization) is computed for all steps at once by the caller; masks are sampled
for all steps before the loop; the loop walks the hoisted tensor with `unbind` (never `xw[t]`,
whose backward is quadratic in T). Gate layouts and formulas equal PyTorch's `nn.LSTM`,
`nn.GRU` and `nn.RNN(nonlinearity="tanh")`, so with an empty plan these cells reproduce the
fused kernels with the same parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

State = tuple[Tensor, ...]
PerStep = Sequence[Tensor] | Tensor | float


@dataclass
class StepPlan:
    """The per-step terms regularizers add to one layer's recurrence for one forward pass.

    Zoneout fields hold per-step Bernoulli masks in training and the rate itself at eval
    (the expectation); masks in `update_masks` and `hidden_mask` are inverted-dropout masks.
    A per-step field holds a sequence with one tensor per step, or one tensor (or rate) that
    applies at every step.
    """

    cell: str
    steps: int
    batch: int
    hidden: int
    like: Tensor
    hidden_mask: Tensor | None = None
    update_masks: PerStep | None = None
    zone_h: PerStep | None = None
    zone_c: PerStep | None = None
    input_norm: Callable[[Tensor], Tensor] | None = None
    hidden_norm: Callable[[Tensor, int], Tensor] | None = None
    cell_norm: Callable[[Tensor, int], Tensor] | None = None
    owners: dict[str, str] = field(default_factory=dict)

    def set(self, name: str, value: object, owner: str) -> None:
        """Set one field; two regularizers may not claim the same one."""
        if getattr(self, name) is not None:
            raise ValueError(f"{owner} and {self.owners[name]} both set the step plan's {name}")
        setattr(self, name, value)
        self.owners[name] = owner

    def shape(self) -> tuple[int, int, int]:
        return (self.steps, self.batch, self.hidden)


def at(value: PerStep | None, t: int) -> Tensor | float | None:
    """The value of a per-step field at step t (a shared tensor or rate applies to all)."""
    if value is None or isinstance(value, (float, Tensor)):
        return value
    return value[t]


def _recurrent(h: Tensor, w_hh: Tensor, b_hh: Tensor, plan: StepPlan, t: int) -> Tensor:
    """W_hh (m ⊙ h) + b_hh, with the optional hidden mask and hidden-side normalization."""
    if plan.hidden_mask is not None:
        h = h * plan.hidden_mask
    if plan.hidden_norm is None:
        return F.linear(h, w_hh, b_hh)
    return plan.hidden_norm(F.linear(h, w_hh), t) + b_hh


def _zone(new: Tensor, old: Tensor, rate: Tensor | float | None) -> Tensor:
    """Zoneout (Krueger et al. 2017): d ⊙ old + (1 − d) ⊙ new."""
    return new if rate is None else torch.lerp(new, old, rate)


def lstm_step(
    gx: Tensor, state: State, w_hh: Tensor, b_hh: Tensor, plan: StepPlan, t: int
) -> State:
    """One LSTM step; gx = W_ih x_t + b_ih, gates in PyTorch's order (i, f, g, o)."""
    h, c = state
    i, f, g, o = (gx + _recurrent(h, w_hh, b_hh, plan, t)).chunk(4, 1)
    g = torch.tanh(g)
    mask = at(plan.update_masks, t)
    if mask is not None:
        g = g * mask
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * g
    c_out = c_new if plan.cell_norm is None else plan.cell_norm(c_new, t)
    h_new = torch.sigmoid(o) * torch.tanh(c_out)
    return _zone(h_new, h, at(plan.zone_h, t)), _zone(c_new, c, at(plan.zone_c, t))


def gru_step(gx: Tensor, state: State, w_hh: Tensor, b_hh: Tensor, plan: StepPlan, t: int) -> State:
    """One GRU step in PyTorch's form: n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))."""
    (h,) = state
    xr, xz, xn = gx.chunk(3, 1)
    hr, hz, hn = _recurrent(h, w_hh, b_hh, plan, t).chunk(3, 1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    mask = at(plan.update_masks, t)
    if mask is not None:
        n = n * mask
    h_new = torch.lerp(n, h, z)
    return (_zone(h_new, h, at(plan.zone_h, t)),)


def rnn_step(gx: Tensor, state: State, w_hh: Tensor, b_hh: Tensor, plan: StepPlan, t: int) -> State:
    """One tanh-RNN step: h' = tanh(W_ih x + b_ih + W_hh h + b_hh)."""
    (h,) = state
    h_new = torch.tanh(gx + _recurrent(h, w_hh, b_hh, plan, t))
    return (_zone(h_new, h, at(plan.zone_h, t)),)


STEPS = {"lstm": lstm_step, "gru": gru_step, "rnn": rnn_step}
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def run_steps(
    cell: str, gx: Tensor, state: State, w_hh: Tensor, b_hh: Tensor, plan: StepPlan
) -> tuple[Tensor, State]:
    """Walk the hoisted (T, B, G) input projection; returns outputs (T, B, H) and the state."""
    step = STEPS[cell]
    outputs = []
    for t, gx_t in enumerate(gx.unbind(0)):
        state = step(gx_t, state, w_hh, b_hh, plan, t)
        outputs.append(state[0])
    return torch.stack(outputs), state
