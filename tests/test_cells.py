"""The custom cells reproduce PyTorch's fused LSTM, GRU and tanh-RNN with the same weights."""

from __future__ import annotations

import pytest
import torch

from helpers import fused_and_custom
from regbench.models.layer import RecurrentLayer
from regbench.models.plan import StepPlan
from regbench.models.speed.gemm import MIN_FEATURES


# With MIN_FEATURES + 8 inputs the hoisted projection runs in oneDNN where it can
# (models/speed/gemm.py); with 4, in F.linear.
@pytest.mark.parametrize("features", [4, MIN_FEATURES + 8])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_custom_path_matches_fused_kernel_outputs_and_gradients(cell, features):
    torch.manual_seed(0)
    layer = RecurrentLayer(cell, features, 6)
    x = torch.randn(9, 3, features, requires_grad=True)
    (fused, fused_state, grads_fused), (custom, custom_state, grads_custom) = fused_and_custom(
        layer, x
    )
    torch.testing.assert_close(custom, fused, atol=1e-6, rtol=1e-5)
    for a, b in zip(custom_state, fused_state, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    for a, b in zip(grads_custom, grads_fused, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_step_plan_refuses_two_owners_of_one_field():
    plan = StepPlan(cell="lstm", steps=2, batch=1, hidden=1, like=torch.zeros(1))
    plan.set("zone_h", 0.1, "zoneout")
    with pytest.raises(ValueError, match="zoneout"):
        plan.set("zone_h", 0.2, "other")


def test_tied_head_shares_the_embedding_and_uniform_ends_init():
    from regbench.models.network import RecurrentNet
    from regbench.tasks.base import InputSpec

    spec = InputSpec(num_outputs=40, vocab_size=40)
    net = RecurrentNet(spec, "classify_each", "lstm", 8, 2, 8, tie_weights=True)
    net.initialize("uniform_ends", 0.1, None)
    assert net.head.weight is net.embedding.weight
    assert net.embedding.weight.abs().max() <= 0.1 and torch.all(net.head.bias == 0)
    untied = sum(
        p.numel() for p in RecurrentNet(spec, "classify_each", "lstm", 8, 2, 8).parameters()
    )
    assert sum(p.numel() for p in net.parameters()) == untied - 40 * 8


@pytest.mark.parametrize("given_state", [False, True])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_a_rewritten_recurrent_weight_runs_the_fused_op_as_functional_call_would(cell, given_state):
    torch.manual_seed(0)
    layer = RecurrentLayer(cell, 4, 6)
    x = torch.randn(7, 3, 4, requires_grad=True)
    w_hh = layer.rnn.weight_hh_l0 * torch.rand_like(layer.rnn.weight_hh_l0).round()
    state = tuple(torch.randn(3, 6) for _ in range(2 if cell == "lstm" else 1))
    hx = tuple(s.unsqueeze(0) for s in state) if given_state else None
    hx = hx[0] if hx is not None and cell != "lstm" else hx
    expected, _ = torch.func.functional_call(layer.rnn, {"weight_hh_l0": w_hh}, (x, hx))
    got, new_state = layer._fused(x, state if given_state else None, w_hh)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    torch.testing.assert_close(new_state[0], got[-1], rtol=0, atol=0)
    params = [x, *layer.rnn.parameters()]
    grads = torch.autograd.grad(got.sum(), params, retain_graph=True, allow_unused=True)
    reference = torch.autograd.grad(expected.sum(), params, allow_unused=True)
    for a, b in zip(grads, reference, strict=True):
        assert (a is None) == (b is None) and (a is None or torch.equal(a, b))
