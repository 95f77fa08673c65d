"""Compiled K-step chunks give the eager walk's outputs, gradients and running statistics."""

from __future__ import annotations

import torch

from helpers import inputs, net


def forward_backward(mode: str):
    model = net(layers=1, zoneout={"z_c": 0.3, "z_h": 0.2}, recurrent_bn={}).train()
    model.set_step_mode(mode, chunk=4)
    torch.manual_seed(11)
    out = model(inputs(steps=8)).prediction
    out.square().sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    stats = model.regularizers[1].norms[0]["h"].running_mean.clone()
    return out.detach(), grads, stats


def test_compiled_chunks_match_the_eager_walk():
    eager, compiled = forward_backward("eager"), forward_backward("compile")
    torch.testing.assert_close(compiled[0], eager[0], atol=1e-5, rtol=1e-4)
    for a, b in zip(compiled[1], eager[1], strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(compiled[2], eager[2], atol=1e-6, rtol=1e-5)
    assert compiled[2].shape == (8, 24)
