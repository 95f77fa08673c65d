"""Helpers for the model tests: small networks with shared weights and reference loops."""

from __future__ import annotations

import torch
from torch import Tensor

from regbench.models.network import RecurrentNet
from regbench.models.variants import REGULARIZERS
from regbench.tasks.base import InputSpec

SPEC = InputSpec(num_outputs=3, features=4)


def net(
    cell: str = "lstm",
    layers: int = 2,
    hidden: int = 6,
    kind: str = "classify_each",
    **regularizers: dict,
) -> RecurrentNet:
    """A network with the given regularizers ({key: params}); weights from seed 0."""
    torch.manual_seed(0)
    regs = [REGULARIZERS[k](**p) for k, p in regularizers.items()]
    return RecurrentNet(SPEC, kind, cell, hidden, layers, 0, regs)


def inputs(batch: int = 5, steps: int = 7) -> Tensor:
    return torch.randn(batch, steps, SPEC.features, generator=torch.Generator().manual_seed(1))


def reference_lstm(x: Tensor, rnn: torch.nn.LSTM, zone_h=None, zone_c=None, h_mask=None):
    """A plain, step-by-step LSTM with optional zoneout rates/masks and a hidden mask, written
    from the equations (Krueger et al. 2017 Sec. 3; Gal & Ghahramani 2016 Sec. 4)."""
    steps, batch, _ = x.shape
    hidden = rnn.hidden_size
    h = x.new_zeros(batch, hidden)
    c = x.new_zeros(batch, hidden)
    outs = []
    for t in range(steps):
        h_in = h if h_mask is None else h * h_mask
        gates = (
            x[t] @ rnn.weight_ih_l0.T + rnn.bias_ih_l0 + h_in @ rnn.weight_hh_l0.T + rnn.bias_hh_l0
        )
        i, f, g, o = gates.chunk(4, 1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_new = torch.sigmoid(o) * torch.tanh(c_new)
        dc = zone_c[t] if isinstance(zone_c, list) else zone_c
        dh = zone_h[t] if isinstance(zone_h, list) else zone_h
        c = c_new if dc is None else dc * c + (1 - dc) * c_new
        h = h_new if dh is None else dh * h + (1 - dh) * h_new
        outs.append(h)
    return torch.stack(outs)
