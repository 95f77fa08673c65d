"""Krueger et al. 2017: units keep their previous value with probability z; expectation at eval."""

from __future__ import annotations

import torch

from helpers import inputs, net, reference_lstm, run_layer
from regbench.models.plan import StepPlan


def test_training_masks_are_unscaled_per_step_and_per_unit():
    reg = net(zoneout={"z_c": 0.5, "z_h": 0.3}).regularizers[0].train()
    plan = StepPlan(cell="lstm", steps=40, batch=8, hidden=16, like=torch.zeros(1))
    reg.plan_steps(plan, 0)
    masks = torch.stack(plan.zone_c)
    assert masks.shape == (40, 8, 16) and set(masks.unique().tolist()) == {0.0, 1.0}
    assert not torch.equal(masks[0], masks[1])
    assert abs(masks.mean().item() - 0.5) < 0.05
    assert abs(torch.stack(plan.zone_h).mean().item() - 0.3) < 0.05


def test_training_step_matches_the_equations_with_the_sampled_masks():
    model = net(layers=1, zoneout={"z_c": 0.4, "z_h": 0.2}).train()
    reg = model.regularizers[0]
    x = inputs().transpose(0, 1)
    plan = StepPlan(cell="lstm", steps=7, batch=5, hidden=6, like=x)
    torch.manual_seed(7)
    reg.plan_steps(plan, 0)
    torch.manual_seed(7)
    out = run_layer(model, x)
    expected = reference_lstm(x, model.layers[0].rnn, zone_h=plan.zone_h, zone_c=plan.zone_c)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)


def test_eval_uses_the_expectation():
    model = net(layers=1, zoneout={"z_c": 0.4, "z_h": 0.2}).eval()
    x = inputs().transpose(0, 1)
    expected = reference_lstm(x, model.layers[0].rnn, zone_h=0.2, zone_c=0.4)
    torch.testing.assert_close(run_layer(model, x), expected, atol=1e-6, rtol=1e-5)


def test_a_unit_zoned_out_at_every_step_keeps_its_initial_value():
    model = net(layers=1, cell="gru", zoneout={"z_c": 0.0, "z_h": 0.999999}).train()
    out = run_layer(model, inputs().transpose(0, 1))
    assert (out == 0).float().mean() > 0.99  # h stays at h_0 = 0


def test_rate_zero_reproduces_none_exactly():
    plain, zero = net().train(), net(zoneout={"z_c": 0.0, "z_h": 0.0}).train()
    x = inputs()
    assert torch.equal(plain(x).prediction, zero(x).prediction)


def test_gru_and_rnn_zone_h_only():
    for cell in ("gru", "rnn"):
        reg = net(cell=cell, zoneout={}).regularizers[0].train()
        plan = StepPlan(cell=cell, steps=3, batch=2, hidden=4, like=torch.zeros(1))
        reg.plan_steps(plan, 0)
        assert plan.zone_c is None and len(plan.zone_h) == 3


def test_gradients_reach_every_parameter():
    model = net(zoneout={"z_c": 0.3, "z_h": 0.1}).train()
    model(inputs()).prediction.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
