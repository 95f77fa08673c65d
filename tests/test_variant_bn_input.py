"""Laurent et al. 2016: BN on the input-to-hidden term only, frame- or sequence-wise."""

from __future__ import annotations

import torch

from helpers import batch_norm, inputs, net, reference_lstm, run_layer


def test_frame_wise_normalizes_w_x_x_per_step_and_leaves_w_h_h_alone():
    model = net(layers=1, bn_input={}).train()
    norm = model.regularizers[0].norms[0]
    x = inputs().transpose(0, 1)
    expected = reference_lstm(
        x, model.layers[0].rnn, x_term=lambda v, t: batch_norm(v, norm.weight)
    )
    torch.testing.assert_close(run_layer(model, x), expected, atol=1e-5, rtol=1e-4)
    assert norm.running_mean.shape == (7, 24)


def test_sequence_wise_pools_statistics_over_batch_and_time():
    model = net(layers=1, bn_input={"statistics": "sequence"}).train()
    norm = model.regularizers[0].norms[0]
    x = inputs().transpose(0, 1)
    wx = x @ model.layers[0].rnn.weight_ih_l0.T
    mean, var = wx.mean((0, 1)), wx.var((0, 1), unbiased=False)
    expected = reference_lstm(
        x,
        model.layers[0].rnn,
        x_term=lambda v, t: (v - mean) / torch.sqrt(var + 1e-5) * norm.weight,
    )
    torch.testing.assert_close(run_layer(model, x), expected, atol=1e-5, rtol=1e-4)
    assert norm.running_mean.shape == (1, 24)


def test_eval_uses_running_statistics():
    model = net(layers=1, bn_input={}).train()
    run_layer(model, inputs().transpose(0, 1))
    model.eval()
    norm = model.regularizers[0].norms[0]
    x = inputs(batch=2).transpose(0, 1)
    expected = reference_lstm(
        x,
        model.layers[0].rnn,
        x_term=lambda v, t: (
            (v - norm.running_mean[t]) / torch.sqrt(norm.running_var[t] + 1e-5) * norm.weight
        ),
    )
    torch.testing.assert_close(run_layer(model, x), expected, atol=1e-5, rtol=1e-4)


def test_defined_for_every_cell():
    for cell in ("gru", "rnn"):
        model = net(cell=cell, bn_input={}).train()
        model(inputs()).prediction.sum().backward()
        assert model.regularizers[0].norms[0].weight.grad is not None
