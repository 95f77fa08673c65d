"""Cooijmans et al. 2017: BN on W_x x, W_h h and c with per-time-step statistics."""

from __future__ import annotations

import pytest
import torch

from helpers import batch_norm, inputs, net, reference_lstm, run_layer
from regbench.errors import ConfigError
from regbench.plan.config import resolve


def bn_model():
    return net(layers=1, recurrent_bn={})


def test_gammas_start_at_0_1_and_only_the_cell_norm_has_a_shift():
    norms = bn_model().regularizers[0].norms[0]
    for name in ("x", "h", "c"):
        assert torch.all(norms[name].weight == 0.1)
    assert norms["x"].bias is None and norms["h"].bias is None
    assert torch.all(norms["c"].bias == 0)


def test_training_forward_matches_equations_6_to_8_with_batch_statistics_per_step():
    model = bn_model().train()
    norms = model.regularizers[0].norms[0]
    x = inputs().transpose(0, 1)
    expected = reference_lstm(
        x,
        model.layers[0].rnn,
        x_term=lambda v, t: batch_norm(v, norms["x"].weight),
        h_term=lambda v, t: batch_norm(v, norms["h"].weight),
        c_term=lambda v, t: batch_norm(v, norms["c"].weight, norms["c"].bias),
    )
    torch.testing.assert_close(run_layer(model, x), expected, atol=1e-5, rtol=1e-4)


def test_running_statistics_are_stored_per_time_step():
    model = bn_model().train()
    norm_x = model.regularizers[0].norms[0]["x"]
    x = inputs(batch=8, steps=7).transpose(0, 1)
    run_layer(model, x)
    assert norm_x.running_mean.shape == (7, 24)  # T_max × 4H
    wx = x @ model.layers[0].rnn.weight_ih_l0.T
    torch.testing.assert_close(norm_x.running_mean, 0.1 * wx.mean(1))
    torch.testing.assert_close(norm_x.running_var, 0.9 + 0.1 * wx.var(1, unbiased=True))
    assert not torch.allclose(norm_x.running_mean[0], norm_x.running_mean[1])
    assert model.regularizers[0].norms[0]["h"].running_mean.shape == (7, 24)
    assert model.regularizers[0].norms[0]["c"].running_mean.shape == (7, 6)


def test_eval_uses_step_statistics_and_reuses_t_max_beyond_it():
    model = bn_model().train()
    for _ in range(3):
        run_layer(model, inputs(steps=4).transpose(0, 1))
    model.eval()
    norms = model.regularizers[0].norms[0]

    def term(name, beta=None):
        n = norms[name]

        def apply(v, t):
            s = min(t, 3)
            out = (v - n.running_mean[s]) / torch.sqrt(n.running_var[s] + 1e-5) * n.weight
            return out if n.bias is None else out + n.bias

        return apply

    x = inputs(steps=9).transpose(0, 1)  # longer than the T_max = 4 of training
    expected = reference_lstm(
        x, model.layers[0].rnn, x_term=term("x"), h_term=term("h"), c_term=term("c")
    )
    torch.testing.assert_close(run_layer(model, x), expected, atol=1e-5, rtol=1e-4)


def test_statistics_survive_a_checkpoint_round_trip():
    model = bn_model().train()
    run_layer(model, inputs(steps=5).transpose(0, 1))
    state = model.state_dict()
    fresh = bn_model()
    fresh.load_state_dict(state)
    assert torch.equal(
        fresh.regularizers[0].norms[0]["h"].running_var,
        model.regularizers[0].norms[0]["h"].running_var,
    )


def test_gradients_reach_the_gains():
    model = net(recurrent_bn={}).train()
    model(inputs()).prediction.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_composes_with_zoneout_and_is_lstm_only():
    resolve("adding", "zoneout+recurrent_bn", "lstm", 0)
    with pytest.raises(ConfigError, match="not defined for cell 'gru'"):
        resolve("adding", "recurrent_bn", "gru", 0)
