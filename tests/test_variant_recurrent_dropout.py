"""Semeniuta et al. 2016: dropout on the cell update only, so no memory is lost."""

from __future__ import annotations

import pytest
import torch

from helpers import inputs, net, reference_lstm, run_layer
from regbench.errors import ConfigError
from regbench.models.plan import StepPlan
from regbench.plan.config import resolve


def plan_for(reg, steps=6, batch=4, hidden=6):
    plan = StepPlan(cell="lstm", steps=steps, batch=batch, hidden=hidden, like=torch.zeros(1))
    reg.plan_steps(plan, 0)
    return plan


def test_per_step_masks_differ_per_step_per_sequence_masks_do_not():
    per_step = net(recurrent_dropout={"p_update": 0.5}).regularizers[0].train()
    masks = plan_for(per_step).update_masks
    assert len(masks) == 6 and not torch.equal(masks[0], masks[1])
    assert set(torch.stack(masks).unique().tolist()) == {0.0, 2.0}
    shared = net(recurrent_dropout={"p_update": 0.5, "per_step": False}).regularizers[0].train()
    assert plan_for(shared).update_masks.shape == (4, 6)


def test_lstm_matches_the_equation_with_the_sampled_masks():
    model = net(layers=1, recurrent_dropout={"p_update": 0.4}).train()
    x = inputs().transpose(0, 1)
    torch.manual_seed(8)
    masks = plan_for(model.regularizers[0], 7, 5, 6).update_masks
    torch.manual_seed(8)
    expected = reference_lstm(x, model.layers[0].rnn, update_masks=masks)
    torch.testing.assert_close(run_layer(model, x), expected, atol=1e-6, rtol=1e-5)


def test_dropping_every_update_keeps_the_memory_decaying_only_through_the_forget_gate():
    model = net(layers=1, recurrent_dropout={"p_update": 0.999999}).train()
    layer, x = model.layers[0], inputs().transpose(0, 1)[:1]
    c0 = torch.randn(5, 6)
    state = (torch.zeros(5, 6), c0)
    _, (_, c1) = layer(x, state, model.regularizers, 0, custom=True)
    f = torch.sigmoid(
        (x[0] @ layer.rnn.weight_ih_l0.T + layer.rnn.bias_ih_l0 + layer.rnn.bias_hh_l0).chunk(4, 1)[
            1
        ]
    )
    torch.testing.assert_close(c1, f * c0)


def test_gru_candidate_dropped():
    model = net(cell="gru", layers=1, recurrent_dropout={"p_update": 0.999999}).train()
    out = run_layer(model, inputs().transpose(0, 1))
    assert torch.count_nonzero(out) == 0  # h_t = z ⊙ h_{t−1} from h_0 = 0


def test_rate_zero_is_none_and_eval_is_plain():
    x = inputs()
    zero = net(recurrent_dropout={"p_update": 0.0}).train()
    assert torch.equal(net().train()(x).prediction, zero(x).prediction)
    evaluated = net(recurrent_dropout={}).eval()
    assert torch.equal(net().eval()(x).prediction, evaluated(x).prediction)


def test_not_defined_for_the_tanh_rnn():
    with pytest.raises(ConfigError, match="not defined for cell 'rnn'"):
        resolve("adding", "recurrent_dropout", "rnn", 0)
