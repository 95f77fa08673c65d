"""Compiled K-step chunks give the eager walk's outputs, gradients and running statistics."""

from __future__ import annotations

import pytest
import torch

from helpers import inputs, net

CASES = {
    "lstm zoneout+recurrent_bn": (
        "lstm",
        {"zoneout": {"z_c": 0.3, "z_h": 0.2}, "recurrent_bn": {}},
    ),
    "lstm variational+weight_drop": ("lstm", {"variational": {}, "weight_drop": {"p": 0.3}}),
    "gru zoneout+layer_norm": ("gru", {"zoneout": {"z_h": 0.2}, "layer_norm": {}}),
    "lstm sequence-wise bn_input": ("lstm", {"bn_input": {"statistics": "sequence"}}),
}


def forward_backward(cell: str, regularizers: dict, mode: str):
    model = net(cell, layers=1, **regularizers).train()
    model.set_step_mode(mode, chunk=4)
    torch.manual_seed(11)
    out = model(inputs(steps=8)).prediction
    out.square().sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    buffers = [b.clone() for b in model.buffers()]
    return out.detach(), grads, buffers


@pytest.mark.parametrize("case", CASES)
def test_compiled_chunks_match_the_eager_walk(case):
    cell, regularizers = CASES[case]
    eager = forward_backward(cell, regularizers, "eager")
    compiled = forward_backward(cell, regularizers, "compile")
    torch.testing.assert_close(compiled[0], eager[0], atol=1e-5, rtol=1e-4)
    for a, b in zip(compiled[1], eager[1], strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)
    rows = 1 if "sequence-wise" in case else 8  # running statistics: pooled, or one row per step
    for a, b in zip(compiled[2], eager[2], strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
        assert a.shape[0] == rows
