"""The hoisted input projection in oneDNN equals F.linear, forward and backward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from regbench.models.gemm import MIN_FEATURES, linear, uses_onednn
from regbench.models.layer import RecurrentLayer

onednn = pytest.mark.skipif(
    not uses_onednn(torch.zeros(1, MIN_FEATURES), torch.zeros(2, MIN_FEATURES)),
    reason="this torch build has no oneDNN linear",
)


def _grads(fn, x, weight, bias):
    out = fn(x, weight, bias)
    upstream = torch.linspace(-1, 1, out.numel()).reshape(out.shape)
    inputs = [t for t in (x, weight, bias) if t is not None]
    return out, torch.autograd.grad(out, inputs, upstream)


@onednn
@pytest.mark.parametrize("with_bias", [True, False])
def test_onednn_linear_equals_f_linear_with_its_gradients(with_bias):
    torch.manual_seed(0)
    x = torch.randn(7, 5, 24, requires_grad=True)  # (T, B, F): rows flattened inside
    weight = torch.randn(32, 24, requires_grad=True)
    bias = torch.randn(32, requires_grad=True) if with_bias else None
    out, grads = _grads(linear, x, weight, bias)
    ref_out, ref_grads = _grads(F.linear, x, weight, bias)
    assert out.shape == (7, 5, 32)
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)
    for got, ref in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


@onednn
def test_onednn_linear_accepts_a_non_contiguous_input():
    torch.manual_seed(0)
    x = torch.randn(5, 7, 24).transpose(0, 1)
    weight = torch.randn(8, 24)
    torch.testing.assert_close(linear(x, weight), F.linear(x, weight), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("x", "weight"),
    [
        (torch.zeros(3, MIN_FEATURES - 1), torch.zeros(4, MIN_FEATURES - 1)),  # too few features
        (torch.zeros(3, 32, dtype=torch.float64), torch.zeros(4, 32, dtype=torch.float64)),
    ],
)
def test_narrow_or_double_inputs_keep_f_linear(x, weight):
    assert not uses_onednn(x, weight)


@onednn
def test_custom_lstm_with_a_onednn_projection_matches_the_fused_kernel():
    torch.manual_seed(0)
    layer = RecurrentLayer("lstm", MIN_FEATURES + 8, 12)
    x = torch.randn(6, 3, MIN_FEATURES + 8, requires_grad=True)
    state = layer.initial_state(3, x)
    fused, _ = layer._fused(x, state, layer.rnn.weight_hh_l0)
    custom, _ = layer._custom(x, state, layer.rnn.weight_hh_l0, [], 0)
    fused_grads = torch.autograd.grad(fused.square().sum(), [x, *layer.parameters()])
    custom_grads = torch.autograd.grad(custom.square().sum(), [x, *layer.parameters()])
    torch.testing.assert_close(custom, fused, atol=1e-6, rtol=1e-5)
    for got, ref in zip(custom_grads, fused_grads, strict=True):
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-4)
