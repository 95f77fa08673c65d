"""Merity et al. 2017 Sec. 4.6: AR on the dropped last-layer output, TAR on the raw one."""

from __future__ import annotations

import torch

from helpers import inputs, net


def test_penalty_is_alpha_ar_plus_beta_tar_as_in_awd_lstm():
    reg = net(ar_tar={"alpha": 2.0, "beta": 1.0}).regularizers[0].train()
    raw = torch.randn(9, 3, 4)
    dropped = raw * (torch.rand_like(raw) > 0.5)
    expected = 2.0 * dropped.pow(2).mean() + 1.0 * (raw[1:] - raw[:-1]).pow(2).mean()
    torch.testing.assert_close(reg.penalty(raw, dropped), expected)


def test_network_passes_the_last_layer_before_and_after_output_dropout():
    model = net(locked_dropout={"p_output": 0.5}, ar_tar={"alpha": 1.0, "beta": 0.0}).train()
    seen = {}
    reg = model.regularizers[1]
    original = reg.penalty

    def spy(raw, dropped):
        seen["raw"], seen["dropped"] = raw, dropped
        return original(raw, dropped)

    reg.penalty = spy
    model(inputs())
    assert seen["raw"].shape == (7, 5, 6)
    zeroed = seen["dropped"] == 0
    assert zeroed.any() and torch.equal(seen["dropped"][~zeroed], 2 * seen["raw"][~zeroed])


def test_no_penalty_at_eval_and_zero_weights_give_zero():
    model = net(ar_tar={}).eval()
    assert model(inputs()).penalty is None
    model = net(ar_tar={"alpha": 0.0, "beta": 0.0}).train()
    assert model(inputs()).penalty.item() == 0.0


def test_predictions_unchanged_by_the_penalty():
    x = inputs()
    assert torch.equal(net().train()(x).prediction, net(ar_tar={}).train()(x).prediction)
