"""Weight-drop (Merity et al. 2017 Sec. 2): DropConnect on W_hh, one mask per forward."""

from __future__ import annotations

import warnings

import torch

from helpers import inputs, net


def recorded_weights(model, forwards=2):
    """The W_hh each forward of layer 0 actually used."""
    seen = []
    reg = model.regularizers[0]
    original = reg.recurrent_weight

    def spy(weight, layer):
        out = original(weight, layer)
        if layer == 0:
            seen.append(out.detach().clone())
        return out

    reg.recurrent_weight = spy
    for _ in range(forwards):
        model(inputs())
    return seen


def test_mask_resampled_every_forward_and_shared_by_all_steps_and_sequences():
    model = net(weight_drop={"p_weight": 0.5}).train()
    first, second = recorded_weights(model)
    w = model.layers[0].rnn.weight_hh_l0.detach()
    assert not torch.equal(first, second)
    kept = first != 0
    torch.testing.assert_close(first[kept], 2 * w[kept])  # scaled by 1/(1 − p)
    assert 0.4 < (~kept).float().mean() < 0.6


def test_fused_kernel_uses_the_dropped_matrix():
    model = net(layers=1, weight_drop={"p_weight": 0.999999}).train()
    x = inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = model(x).prediction
    reference = net(layers=1)
    with torch.no_grad():
        reference.layers[0].rnn.weight_hh_l0.zero_()
    torch.testing.assert_close(out, reference.train()(x).prediction)
    assert not any(r.custom_cell for r in model.regularizers)


def test_off_at_eval_and_rate_zero_is_none():
    x = inputs()
    assert torch.equal(net().eval()(x).prediction, net(weight_drop={}).eval()(x).prediction)
    zero = net(weight_drop={"p_weight": 0.0}).train()
    assert torch.equal(net().train()(x).prediction, zero(x).prediction)


def test_gradient_reaches_the_raw_weight_through_kept_entries_only():
    model = net(layers=1, weight_drop={"p_weight": 0.5}).train()
    reg = model.regularizers[0]
    torch.manual_seed(5)
    w = model.layers[0].rnn.weight_hh_l0
    dropped = reg.recurrent_weight(w, 0)
    dropped.sum().backward()
    assert torch.equal(w.grad == 0, dropped.detach() == 0)
