"""Helpers for the model tests: small networks with shared weights and reference loops."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from regbench.models.cells import State
from regbench.models.layer import RecurrentLayer
from regbench.models.network import RecurrentNet
from regbench.models.variants import REGULARIZERS
from regbench.tasks.base import InputSpec

SPEC = InputSpec(num_outputs=3, features=4)
TOKENS = InputSpec(num_outputs=3, vocab_size=30)
Term = Callable[[Tensor, int], Tensor]


def net(
    cell: str = "lstm",
    layers: int = 2,
    hidden: int = 6,
    kind: str = "classify_each",
    spec: InputSpec = SPEC,
    **regularizers: dict,
) -> RecurrentNet:
    """A network with the given regularizers ({key: params}); weights from seed 0."""
    torch.manual_seed(0)
    regs = [REGULARIZERS[k](**p) for k, p in regularizers.items()]
    return RecurrentNet(spec, kind, cell, hidden, layers, 5, regs)


def inputs(batch: int = 5, steps: int = 7) -> Tensor:
    return torch.randn(batch, steps, SPEC.features, generator=torch.Generator().manual_seed(1))


def tokens(batch: int = 5, steps: int = 7) -> Tensor:
    return torch.randint(
        0, TOKENS.vocab_size, (batch, steps), generator=torch.Generator().manual_seed(2)
    )


def run_layer(
    model: RecurrentNet, x: Tensor, index: int = 0, lengths: Tensor | None = None
) -> Tensor:
    """Layer `index` of `model` on time-major x through the custom cell (a padded batch when
    `lengths` is given)."""
    layer = model.layers[index]
    return layer(x, None, model.regularizers, index, custom=True, lengths=lengths)[0]


def fused_and_custom(layer: RecurrentLayer, x: Tensor) -> list[tuple[Tensor, State, tuple]]:
    """`layer` over time-major `x` from a random state (drawn here), through the fused kernel
    and through the custom cell: (outputs, final state, gradients of Σ out² with respect to
    x and the layer's parameters) for each, fused first."""
    parts = 2 if layer.cell == "lstm" else 1
    state = tuple(torch.randn(x.shape[1], layer.hidden_size) for _ in range(parts))
    runs = []
    for path in (layer._fused, lambda *args: layer._custom(*args, [], 0)):
        out, final = path(x, state, layer.rnn.weight_hh_l0)
        grads = torch.autograd.grad(out.square().sum(), [x, *layer.parameters()])
        runs.append((out, final, grads))
    return runs


def batch_norm(v: Tensor, gamma: Tensor, beta: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Batch norm of a (B, F) term with this batch's statistics (biased variance)."""
    out = (v - v.mean(0)) / torch.sqrt(v.var(0, unbiased=False) + eps) * gamma
    return out if beta is None else out + beta


def reference_lstm(
    x: Tensor,
    rnn: torch.nn.LSTM,
    zone_h=None,
    zone_c=None,
    h_mask=None,
    update_masks=None,
    x_term: Term | None = None,
    h_term: Term | None = None,
    c_term: Term | None = None,
    state=None,
) -> Tensor:
    """A plain step-by-step LSTM written from the papers' equations, with optional zoneout
    (Krueger et al. 2017 Sec. 3.2), hidden mask (Gal & Ghahramani 2016 eq. 7), update masks
    (Semeniuta et al. 2016) and normalizations of W_x x, W_h h and c (Cooijmans et al. 2017
    eqs. 6–8; Ba et al. 2016 supp. eqs. 20–22)."""
    steps, batch, _ = x.shape
    hidden = rnn.hidden_size
    h, c = state if state is not None else (x.new_zeros(batch, hidden), x.new_zeros(batch, hidden))
    outs = []
    for t in range(steps):
        h_in = h if h_mask is None else h * h_mask
        wx, wh = x[t] @ rnn.weight_ih_l0.T, h_in @ rnn.weight_hh_l0.T
        wx = wx if x_term is None else x_term(wx, t)
        wh = wh if h_term is None else h_term(wh, t)
        i, f, g, o = (wx + rnn.bias_ih_l0 + wh + rnn.bias_hh_l0).chunk(4, 1)
        g = torch.tanh(g) if update_masks is None else torch.tanh(g) * update_masks[t]
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * g
        h_new = torch.sigmoid(o) * torch.tanh(c_new if c_term is None else c_term(c_new, t))
        dc = zone_c[t] if isinstance(zone_c, list) else zone_c
        dh = zone_h[t] if isinstance(zone_h, list) else zone_h
        c = c_new if dc is None else dc * c + (1 - dc) * c_new
        h = h_new if dh is None else dh * h + (1 - dh) * h_new
        outs.append(h)
    return torch.stack(outs)


def task_instance(
    name: str, data_dir=None, data_seed: int = 0, batch_size: int | None = None, **params
):
    """A task with its protocol's parameters overridden by `params` (not yet set up)."""
    from regbench.tasks import get_task

    cls = get_task(name)
    batch = batch_size or cls.protocol.train.get("batch_size", 16)
    return cls(
        {**cls.protocol.params, **params},
        data_seed=data_seed,
        order_seed=0,
        batch_size=batch,
        eval_batch_size=16,
        data_dir=data_dir,
    )
