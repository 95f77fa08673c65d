"""Merity et al. 2017: locked dropout, one mask per sequence on inputs/outputs, fused kernel."""

from __future__ import annotations

import torch

from helpers import inputs, net


def test_mask_shared_across_steps_differs_across_sequences_and_resampled():
    reg = net(locked_dropout={"p_input": 0.5}).regularizers[0].train()
    x = torch.ones(20, 16, 10)
    y = reg.at_site(x, "input", 0)
    assert torch.equal(y, y[:1].expand_as(y))
    assert len({tuple(r.tolist()) for r in y[0]}) > 1
    assert set(y.unique().tolist()) == {0.0, 2.0}
    assert not torch.equal(y, reg.at_site(x, "input", 0))


def test_leaves_the_recurrence_to_the_fused_kernel():
    model = net(locked_dropout={}).train()
    assert not any(r.custom_cell for r in model.regularizers)


def test_rate_zero_reproduces_none_exactly_and_off_at_eval():
    x = inputs()
    plain = net().train()
    zero = net(locked_dropout={"p_input": 0.0, "p_hidden": 0.0, "p_output": 0.0}).train()
    assert torch.equal(plain(x).prediction, zero(x).prediction)
    assert torch.equal(net().eval()(x).prediction, net(locked_dropout={}).eval()(x).prediction)


def test_parameter_count_equals_none():
    assert sum(p.numel() for p in net(locked_dropout={}).parameters()) == sum(
        p.numel() for p in net().parameters()
    )
