"""Custom recurrent cells for the regularizers that change the recurrence itself.

Each step reads what the regularizers planned for it from a `StepPlan` (models/plan.py).
The layout is built for speed: the input projection W_ih x (and any input-side
normalization) is computed for all steps at once by the caller, or inside the step for inputs
with few features (models/speed/projection.py); masks are sampled for all steps before the
loop; the loop walks the per-step tensors of an `unbind` (never `xw[t]`, whose backward is
quadratic in T), eagerly or in compiled chunks (models/speed/). Gate layouts and formulas
equal PyTorch's `nn.LSTM`, `nn.GRU` and `nn.RNN(nonlinearity="tanh")`, so with an empty plan
these cells reproduce the fused kernels with the same parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from regbench.models.plan import Norm, Stats, StepPlan, at

State = tuple[Tensor, ...]


def normalize(
    x: Tensor, norm: Norm, t: int, valid: Tensor | None = None
) -> tuple[Tensor, Stats | None]:
    """The normalized term and, for batch norm in training, the batch statistics used: over
    the batch, or over its rows where `valid` (B, 1) is set (the sequences still running at
    step t of a padded batch)."""
    if norm.kind == "layer":
        return F.layer_norm(x, x.shape[-1:], norm.weight, norm.bias, norm.eps), None
    if norm.stats is not None:
        mean, var = norm.stats[t]
        used = None
    else:
        mean, var = batch_moments(x, valid, dims=(0,))
        used = (mean, var)
    y = (x - mean) * torch.rsqrt(var + norm.eps) * norm.weight
    return (y if norm.bias is None else y + norm.bias), used


def valid_steps(lengths: Tensor, steps: int, device: torch.device) -> Tensor:
    """(T, B, 1) bool: whether step t of sequence b is within its length `lengths[b]`."""
    t = torch.arange(steps, device=device).unsqueeze(1)
    return (t < lengths.to(device)).unsqueeze(-1)


def batch_moments(x: Tensor, valid: Tensor | None, dims: tuple[int, ...]) -> Stats:
    """Mean and biased variance of `x` over `dims`, counting only the entries where the
    broadcast bool mask `valid` is set (all when None)."""
    if valid is None:
        var, mean = torch.var_mean(x, dim=dims, unbiased=False)
        return mean, var
    # where, not a product: padding holding inf or NaN stays out; float32: half overflows
    count = valid.sum(dims, dtype=torch.float32).clamp_min(1)
    mean = torch.where(valid, x, 0).sum(dims, dtype=torch.float32) / count
    spread = torch.where(valid, x - mean.to(x.dtype), 0).float().square()
    return mean.to(x.dtype), (spread.sum(dims) / count).to(x.dtype)


StepStats = dict[str, Stats]
Step = tuple[State, StepStats]


def _normed(x: Tensor, name: str, plan: StepPlan, t: int, used: StepStats) -> Tensor:
    """`x` through the plan's step norm `name`, if set, noting the batch statistics used."""
    norm = getattr(plan, name)
    if norm is None:
        return x
    y, stats = normalize(x, norm, t, at(plan.valid, t))
    if stats is not None:
        used[name] = stats
    return y


def _recurrent(
    h: Tensor, w_hh: Tensor, b_hh: Tensor | None, plan: StepPlan, t: int, used: StepStats
) -> Tensor:
    """W_hh (m ⊙ h) + b_hh, with the optional hidden mask, weight-gradient probe and
    hidden-side normalization."""
    if plan.hidden_mask is not None:
        h = h * plan.hidden_mask
    if plan.hidden_norm is None and plan.weight_probes is None:
        return F.linear(h, w_hh, b_hh)
    product = F.linear(h, w_hh)
    if plan.weight_probes is not None:
        product = product + plan.weight_probes[t]
    product = _normed(product, "hidden_norm", plan, t, used)
    return product if b_hh is None else product + b_hh


def _projected(x: Tensor, plan: StepPlan) -> Tensor:
    """The step's input term: W_ih x_t (+ b_ih) as a sum of F broadcast products when the plan
    projects in the step, else `x` itself (already projected before the loop)."""
    weight = plan.input_weight
    if weight is None:
        return x
    out = x[:, :1] * weight[:, 0]
    for f in range(1, x.shape[1]):
        out = out + x[:, f : f + 1] * weight[:, f]
    return out if plan.input_bias is None else out + plan.input_bias


def _zone(new: Tensor, old: Tensor, rate: Tensor | float | None) -> Tensor:
    """Zoneout (Krueger et al. 2017): d ⊙ old + (1 − d) ⊙ new."""
    return new if rate is None else torch.lerp(new, old, rate)


def _dropped(update: Tensor, plan: StepPlan, t: int) -> Tensor:
    mask = at(plan.update_masks, t)
    return update if mask is None else update * mask


def lstm_step(gx: Tensor, state: State, w_hh: Tensor, b_hh: Tensor, plan: StepPlan, t: int) -> Step:
    """One LSTM step; gx = W_ih x_t + b_ih (or x_t, see StepPlan), gates in PyTorch's order
    (i, f, g, o)."""
    h, c = state
    used: StepStats = {}
    gx = _normed(_projected(gx, plan), "step_input_norm", plan, t, used)
    gh = _recurrent(h, w_hh, b_hh, plan, t, used)
    i, f, g, o = (gx + gh).chunk(4, 1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * _dropped(torch.tanh(g), plan, t)
    h_new = torch.sigmoid(o) * torch.tanh(_normed(c_new, "cell_norm", plan, t, used))
    state = (_zone(h_new, h, at(plan.zone_h, t)), _zone(c_new, c, at(plan.zone_c, t)))
    return state, used


def gru_step(gx: Tensor, state: State, w_hh: Tensor, b_hh: Tensor, plan: StepPlan, t: int) -> Step:
    """One GRU step in PyTorch's form: n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))."""
    (h,) = state
    used: StepStats = {}
    gx = _normed(_projected(gx, plan), "step_input_norm", plan, t, used)
    gh = _recurrent(h, w_hh, b_hh, plan, t, used)
    xr, xz, xn = gx.chunk(3, 1)
    hr, hz, hn = gh.chunk(3, 1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = _dropped(torch.tanh(xn + r * hn), plan, t)
    h_new = torch.lerp(n, h, z)
    return (_zone(h_new, h, at(plan.zone_h, t)),), used


def rnn_step(gx: Tensor, state: State, w_hh: Tensor, b_hh: Tensor, plan: StepPlan, t: int) -> Step:
    """One tanh-RNN step: h' = tanh(W_ih x + b_ih + W_hh h + b_hh). With `sum_norm`, gx
    carries no bias and b_hh is both biases: h' = tanh(N(W_ih x + W_hh h) + b)."""
    (h,) = state
    used: StepStats = {}
    gx = _normed(_projected(gx, plan), "step_input_norm", plan, t, used)
    if plan.sum_norm is None:
        h_new = torch.tanh(gx + _recurrent(h, w_hh, b_hh, plan, t, used))
    else:  # no hidden_norm: the claims exclude it
        summed = gx + _recurrent(h, w_hh, None, plan, t, used)
        h_new = torch.tanh(_normed(summed, "sum_norm", plan, t, used) + b_hh)
    return (_zone(h_new, h, at(plan.zone_h, t)),), used


STEPS = {"lstm": lstm_step, "gru": gru_step, "rnn": rnn_step}
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


@dataclass
class Walk:
    """What a walk over steps produced: outputs (T, B, H), the final state, and for each step
    norm in training batch mode, the batch statistics it used at each step."""

    outputs: Tensor
    state: State
    stats: dict[str, list[Stats]]


def run_steps(
    cell: str, gx: Sequence[Tensor], state: State, w_hh: Tensor, b_hh: Tensor, plan: StepPlan
) -> Walk:
    """Walk the per-step input projections `gx` (one (B, G) tensor per step; the raw (B, F)
    inputs when the plan projects in the step)."""
    step = STEPS[cell]
    outputs: list[Tensor] = []
    stats: dict[str, list[Stats]] = {}
    for t, gx_t in enumerate(gx):
        state, used = step(gx_t, state, w_hh, b_hh, plan, t)
        outputs.append(state[0])
        for name, pair in used.items():
            stats.setdefault(name, []).append(pair)
    return Walk(torch.stack(outputs), state, stats)
