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
from dataclasses import dataclass, field, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

State = tuple[Tensor, ...]
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
    update: Callable[[Tensor, Tensor, int], None] | None = None


def normalize(x: Tensor, norm: Norm, t: int) -> tuple[Tensor, Stats | None]:
    """The normalized term and, for batch norm in training, the batch statistics used."""
    if norm.kind == "layer":
        return F.layer_norm(x, x.shape[-1:], norm.weight, norm.bias, norm.eps), None
    if norm.stats is not None:
        mean, var = norm.stats[t]
        used = None
    else:
        var, mean = torch.var_mean(x, dim=0, unbiased=False)
        used = (mean, var)
    y = (x - mean) * torch.rsqrt(var + norm.eps) * norm.weight
    return (y if norm.bias is None else y + norm.bias), used


@dataclass
class StepPlan:
    """The per-step terms regularizers add to one layer's recurrence for one forward pass.

    Zoneout fields hold per-step Bernoulli masks in training and the rate itself at eval
    (the expectation); masks in `update_masks` and `hidden_mask` are inverted-dropout masks.
    A per-step field holds a sequence with one tensor per step, or one tensor (or rate) that
    applies at every step. `input_norm` acts on W_ih x for all steps at once, before the loop;
    `sum_norm` (tanh-RNN) normalizes W_ih x + W_hh h, and the biases are added after it.
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
    hidden_norm: Norm | None = None
    cell_norm: Norm | None = None
    sum_norm: Norm | None = None
    owners: dict[str, str] = field(default_factory=dict)

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
        what the steps do not read (input norm, owners, running-average updates) left out."""

        def cut(value: object) -> object:
            return value[start:stop] if isinstance(value, (list, tuple)) else value

        norms = {
            name: replace(norm, stats=cut(norm.stats), update=None)
            for name in ("hidden_norm", "cell_norm", "sum_norm")
            if (norm := getattr(self, name)) is not None
        }
        return replace(
            self,
            steps=stop - start,
            update_masks=cut(self.update_masks),
            zone_h=cut(self.zone_h),
            zone_c=cut(self.zone_c),
            input_norm=None,
            owners={},
            **norms,
        )


def at(value: PerStep | None, t: int) -> Tensor | float | None:
    """The value of a per-step field at step t (a shared tensor or rate applies to all)."""
    if value is None or isinstance(value, (float, Tensor)):
        return value
    return value[t]


Step = tuple[State, Stats | None, Stats | None]


def _recurrent(
    h: Tensor, w_hh: Tensor, b_hh: Tensor | None, plan: StepPlan, t: int
) -> tuple[Tensor, Stats | None]:
    """W_hh (m ⊙ h) + b_hh, with the optional hidden mask and hidden-side normalization."""
    if plan.hidden_mask is not None:
        h = h * plan.hidden_mask
    if plan.hidden_norm is None:
        return F.linear(h, w_hh, b_hh), None
    normed, stats = normalize(F.linear(h, w_hh), plan.hidden_norm, t)
    return normed + b_hh, stats


def _zone(new: Tensor, old: Tensor, rate: Tensor | float | None) -> Tensor:
    """Zoneout (Krueger et al. 2017): d ⊙ old + (1 − d) ⊙ new."""
    return new if rate is None else torch.lerp(new, old, rate)


def _dropped(update: Tensor, plan: StepPlan, t: int) -> Tensor:
    mask = at(plan.update_masks, t)
    return update if mask is None else update * mask


def lstm_step(gx: Tensor, state: State, w_hh: Tensor, b_hh: Tensor, plan: StepPlan, t: int) -> Step:
    """One LSTM step; gx = W_ih x_t + b_ih, gates in PyTorch's order (i, f, g, o)."""
    h, c = state
    gh, h_stats = _recurrent(h, w_hh, b_hh, plan, t)
    i, f, g, o = (gx + gh).chunk(4, 1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * _dropped(torch.tanh(g), plan, t)
    c_stats = None
    c_out = c_new
    if plan.cell_norm is not None:
        c_out, c_stats = normalize(c_new, plan.cell_norm, t)
    h_new = torch.sigmoid(o) * torch.tanh(c_out)
    state = (_zone(h_new, h, at(plan.zone_h, t)), _zone(c_new, c, at(plan.zone_c, t)))
    return state, h_stats, c_stats


def gru_step(gx: Tensor, state: State, w_hh: Tensor, b_hh: Tensor, plan: StepPlan, t: int) -> Step:
    """One GRU step in PyTorch's form: n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))."""
    (h,) = state
    gh, h_stats = _recurrent(h, w_hh, b_hh, plan, t)
    xr, xz, xn = gx.chunk(3, 1)
    hr, hz, hn = gh.chunk(3, 1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = _dropped(torch.tanh(xn + r * hn), plan, t)
    h_new = torch.lerp(n, h, z)
    return (_zone(h_new, h, at(plan.zone_h, t)),), h_stats, None


def rnn_step(gx: Tensor, state: State, w_hh: Tensor, b_hh: Tensor, plan: StepPlan, t: int) -> Step:
    """One tanh-RNN step: h' = tanh(W_ih x + b_ih + W_hh h + b_hh). With `sum_norm`, gx
    carries no bias and b_hh is both biases: h' = tanh(N(W_ih x + W_hh h) + b)."""
    (h,) = state
    if plan.sum_norm is None:
        gh, h_stats = _recurrent(h, w_hh, b_hh, plan, t)
        h_new = torch.tanh(gx + gh)
    else:
        gh, _ = _recurrent(h, w_hh, None, plan, t)  # no hidden_norm: the claims exclude it
        normed, h_stats = normalize(gx + gh, plan.sum_norm, t)
        h_new = torch.tanh(normed + b_hh)
    return (_zone(h_new, h, at(plan.zone_h, t)),), h_stats, None


STEPS = {"lstm": lstm_step, "gru": gru_step, "rnn": rnn_step}
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


@dataclass
class Walk:
    """What a walk over steps produced: outputs (T, B, H), the final state, and the batch
    statistics each batch norm used at each step (empty lists when there are none)."""

    outputs: Tensor
    state: State
    hidden_stats: list[Stats]
    cell_stats: list[Stats]


def run_steps(
    cell: str, gx: Sequence[Tensor], state: State, w_hh: Tensor, b_hh: Tensor, plan: StepPlan
) -> Walk:
    """Walk the per-step input projections `gx` (one (B, G) tensor per step)."""
    step = STEPS[cell]
    outputs, hidden_stats, cell_stats = [], [], []
    for t, gx_t in enumerate(gx):
        state, h_stats, c_stats = step(gx_t, state, w_hh, b_hh, plan, t)
        outputs.append(state[0])
        if h_stats is not None:
            hidden_stats.append(h_stats)
        if c_stats is not None:
            cell_stats.append(c_stats)
    return Walk(torch.stack(outputs), state, hidden_stats, cell_stats)
