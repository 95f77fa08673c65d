"""Zaremba et al. 2014: dropout on non-recurrent connections only, fresh masks per step."""

from __future__ import annotations

import torch

from helpers import inputs, net


def test_rate_zero_reproduces_none_exactly():
    plain = net()
    zero = net(dropout={"p_input": 0.0, "p_hidden": 0.0, "p_output": 0.0})
    plain.train(), zero.train()
    x = inputs()
    assert torch.equal(plain(x).prediction, zero(x).prediction)


def test_off_at_eval():
    plain, regularized = net().eval(), net(dropout={}).eval()
    x = inputs()
    assert torch.equal(plain(x).prediction, regularized(x).prediction)


def test_masks_are_fresh_per_step_and_element_and_scaled():
    reg = net(dropout={"p_input": 0.5}).regularizers[0].train()
    x = torch.ones(50, 8, 20)
    y = reg.at_site(x, "input", 0)
    assert set(y.unique().tolist()) == {0.0, 2.0}  # inverted dropout: kept units × 1/(1 − p)
    assert not torch.equal(y[0], y[1])  # a new mask at each step
    assert abs((y == 0).float().mean().item() - 0.5) < 0.05


def test_rates_apply_per_site():
    reg = net(dropout={"p_input": 0.0, "p_hidden": 0.5, "p_output": 0.0}).regularizers[0]
    x = torch.ones(4, 3, 10)
    assert torch.equal(reg.at_site(x, "input", 0), x)
    assert torch.equal(reg.at_site(x, "output", 1), x)
    assert not torch.equal(reg.at_site(x, "hidden", 0), x)


def test_recurrence_untouched_fused_kernel_used():
    model = net(dropout={}).train()
    assert not any(r.custom_cell for r in model.regularizers)


def test_gradients_flow_through_kept_units_only():
    reg = net(dropout={"p_input": 0.5}).regularizers[0].train()
    x = torch.ones(6, 2, 5, requires_grad=True)
    y = reg.at_site(x, "input", 0)
    y.sum().backward()
    assert torch.equal(x.grad == 0, y == 0)
