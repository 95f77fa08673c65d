"""The hoisted input projection in oneDNN equals F.linear, forward and backward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from regbench.models.speed.gemm import MIN_FEATURES, linear, uses_onednn, weight_grad

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
def test_onednn_linear_takes_transposed_views_forward_and_backward():
    torch.manual_seed(0)
    x = torch.randn(24, 9).t().requires_grad_()  # (9, 24), a transposed view
    weight = torch.randn(24, 8).t().requires_grad_()  # (8, 24), a transposed view
    assert not x.is_contiguous() and not weight.is_contiguous()
    out, grads = _grads(linear, x, weight, None)
    ref_out, ref_grads = _grads(F.linear, x, weight, None)
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)
    for got, ref in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


@onednn
def test_a_second_order_gradient_is_refused_not_wrong():
    x = torch.randn(4, 24, requires_grad=True)
    weight = torch.randn(8, 24, requires_grad=True)
    (grad_x,) = torch.autograd.grad(linear(x, weight).square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        grad_x.sum().backward()


def test_weight_grad_falls_back_to_a_plain_product_in_double():
    grad, inputs = torch.randn(7, 5, dtype=torch.float64), torch.randn(7, 3, dtype=torch.float64)
    torch.testing.assert_close(weight_grad(grad, inputs), grad.t() @ inputs)


@onednn
def test_weight_grad_in_onednn_equals_the_plain_product():
    grad, inputs = torch.randn(70, 32), torch.randn(70, 20)
    torch.testing.assert_close(weight_grad(grad, inputs), grad.t() @ inputs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("x", "weight"),
    [
        (torch.zeros(3, MIN_FEATURES - 1), torch.zeros(4, MIN_FEATURES - 1)),  # too few features
        (torch.zeros(3, 32, dtype=torch.float64), torch.zeros(4, 32, dtype=torch.float64)),
    ],
)
def test_narrow_or_double_inputs_keep_f_linear(x, weight):
    assert not uses_onednn(x, weight)


@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN")  # from flags()
def test_switching_onednn_off_keeps_f_linear():
    x, weight = torch.zeros(3, 32), torch.zeros(4, 32)
    with torch.backends.mkldnn.flags(enabled=False):
        assert not uses_onednn(x, weight)
    assert not uses_onednn(x, weight, torch.zeros(4, dtype=torch.float64))
