"""Gal & Ghahramani 2016: one mask per sequence on inputs, outputs and the recurrent state."""

from __future__ import annotations

import torch

from helpers import inputs, net, reference_lstm
from regbench.models.plan import StepPlan


def test_site_mask_identical_across_steps_and_different_across_sequences():
    reg = net(variational={"p_output": 0.5}).regularizers[0].train()
    x = torch.ones(30, 16, 12)
    y = reg.at_site(x, "output", 1)
    assert torch.equal(y, y[:1].expand_as(y))  # same mask at every step
    assert len({tuple(row.tolist()) for row in y[0]}) > 1  # differs across the batch
    assert set(y.unique().tolist()) == {0.0, 2.0}


def test_masks_resampled_at_every_forward():
    reg = net(variational={"p_output": 0.5}).regularizers[0].train()
    x = torch.ones(3, 16, 12)
    assert not torch.equal(reg.at_site(x, "output", 1), reg.at_site(x, "output", 1))


def test_recurrent_mask_is_one_per_sequence_and_matches_the_equation():
    model = net(layers=1, variational={"p_input": 0.0, "p_output": 0.0, "p_recurrent": 0.5})
    model.train()
    reg, layer = model.regularizers[0], model.layers[0]
    plan = StepPlan(cell="lstm", steps=7, batch=5, hidden=6, like=torch.zeros(1))
    torch.manual_seed(3)
    reg.plan_steps(plan, 0)
    assert plan.hidden_mask.shape == (5, 6)  # (batch, hidden): shared by all steps
    x = inputs().transpose(0, 1)
    torch.manual_seed(3)
    out, _ = layer(x, None, model.regularizers, 0, custom=True)
    expected = reference_lstm(x, layer.rnn, h_mask=plan.hidden_mask)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)


def test_rate_zero_reproduces_none_exactly():
    zero = {"p_input": 0.0, "p_hidden": 0.0, "p_output": 0.0, "p_recurrent": 0.0}
    plain, regularized = net().train(), net(variational=zero).train()
    x = inputs()
    assert torch.equal(plain(x).prediction, regularized(x).prediction)


def test_off_at_eval():
    plain, regularized = net().eval(), net(variational={}).eval()
    x = inputs()
    assert torch.equal(plain(x).prediction, regularized(x).prediction)


def test_gradients_reach_every_parameter():
    model = net(variational={"p_recurrent": 0.3}).train()
    model(inputs()).prediction.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
