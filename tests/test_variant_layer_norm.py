"""Ba et al. 2016: layer normalization of W_x x, W_h h and c (LSTM), of the summed input (RNN)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from helpers import inputs, net, reference_lstm, run_layer


def ln(v, norm):
    return F.layer_norm(v, v.shape[-1:], norm.weight, norm.bias)


def test_lstm_matches_supplementary_equations_20_to_22():
    model = net(layers=1, layer_norm={}).train()
    norms = model.regularizers[0].norms[0]
    with torch.no_grad():
        for p in model.regularizers.parameters():
            p.add_(torch.randn_like(p) * 0.1)  # away from the init, so gains and shifts count
    x = inputs().transpose(0, 1)
    expected = reference_lstm(
        x,
        model.layers[0].rnn,
        x_term=lambda v, t: ln(v, norms["x"]),
        h_term=lambda v, t: ln(v, norms["h"]),
        c_term=lambda v, t: ln(v, norms["c"]),
    )
    torch.testing.assert_close(run_layer(model, x), expected, atol=1e-5, rtol=1e-4)


def test_gains_start_at_one_shifts_at_zero():
    norms = net(layers=1, layer_norm={}).regularizers[0].norms[0]
    assert all(torch.all(norms[k].weight == 1) and torch.all(norms[k].bias == 0) for k in "xhc")


def test_statistics_are_per_example_so_train_equals_eval():
    model = net(layer_norm={})
    x = inputs()
    train_out = model.train()(x).prediction
    assert torch.equal(train_out, model.eval()(x).prediction)
    one = model(x[:1]).prediction  # an example's output does not depend on its batch
    torch.testing.assert_close(one, train_out[:1], atol=1e-6, rtol=1e-5)


def test_tanh_rnn_normalizes_the_summed_input_equation_4():
    model = net(cell="rnn", layers=1, layer_norm={}).train()
    rnn, norm = model.layers[0].rnn, model.regularizers[0].norms[0]["sum"]
    x = inputs().transpose(0, 1)
    h = torch.zeros(5, 6)
    outs = []
    for t in range(x.shape[0]):
        a = x[t] @ rnn.weight_ih_l0.T + h @ rnn.weight_hh_l0.T
        h = torch.tanh(F.layer_norm(a, (6,), norm.weight) + rnn.bias_ih_l0 + rnn.bias_hh_l0)
        outs.append(h)
    torch.testing.assert_close(run_layer(model, x), torch.stack(outs), atol=1e-5, rtol=1e-4)


def test_gru_runs_and_gradients_reach_the_gains():
    model = net(cell="gru", layer_norm={}).train()
    model(inputs()).prediction.sum().backward()
    assert all(p.grad is not None for p in model.regularizers.parameters())
