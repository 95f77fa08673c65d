"""W_hh's gradient as one product over all steps equals the per-step sum
(models/speed/weight_grad.py)."""

from __future__ import annotations

import pytest
import torch

import regbench.models.speed.walker as walker
from helpers import inputs, net
from regbench.models.speed.weight_grad import MAX_BATCH, MIN_HIDDEN, RecurrentWeightGrad, pays_off

CASES = {
    "lstm variational (hidden mask)": ("lstm", {"variational": {}}),
    "lstm recurrent_bn (hidden norm)": ("lstm", {"recurrent_bn": {}}),
    "gru layer_norm": ("gru", {"layer_norm": {}}),
    "rnn layer_norm (sum norm, no b_hh in the step)": ("rnn", {"layer_norm": {}}),
    "lstm weight_drop+zoneout (dropped W_hh)": (
        "lstm",
        {"weight_drop": {"p": 0.3}, "zoneout": {"z_c": 0.3, "z_h": 0.2}},
    ),
}


def gradients(
    cell: str, regularizers: dict, one_product: bool, monkeypatch, mode: str = "eager"
) -> list:
    monkeypatch.setattr(walker, "pays_off", lambda weight, batch, compiled: one_product)
    model = net(cell, layers=2, **regularizers).train()
    model.set_step_mode(mode, chunk=4)
    torch.manual_seed(3)
    model(inputs(batch=6, steps=9)).prediction.square().sum().backward()
    return [p.grad for p in model.parameters()]


@pytest.mark.parametrize("case", CASES)
def test_one_product_gives_the_per_step_gradient(case, monkeypatch):
    cell, regularizers = CASES[case]
    per_step = gradients(cell, regularizers, False, monkeypatch)
    one_product = gradients(cell, regularizers, True, monkeypatch)
    for a, b in zip(one_product, per_step, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "case",
    [
        pytest.param("lstm recurrent_bn (hidden norm)", marks=pytest.mark.slow),  # long compiles
        "lstm variational (hidden mask)",
        pytest.param("gru layer_norm", marks=pytest.mark.slow),
    ],
)
def test_compiled_steps_with_probes_give_the_eager_per_step_gradient(case, monkeypatch):
    cell, regularizers = CASES[case]
    per_step = gradients(cell, regularizers, False, monkeypatch)
    compiled = gradients(cell, regularizers, True, monkeypatch, mode="compile")
    for a, b in zip(compiled, per_step, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)


def test_two_backwards_through_a_retained_graph_add_up(monkeypatch):
    monkeypatch.setattr(walker, "pays_off", lambda weight, batch, compiled: True)
    model = net("lstm", layers=1, variational={}).train()
    torch.manual_seed(3)
    loss = model(inputs(batch=4, steps=5)).prediction.square().sum()
    weight = model.layers[0].rnn.weight_hh_l0
    loss.backward(retain_graph=True)
    once = weight.grad.clone()
    loss.backward()
    torch.testing.assert_close(weight.grad, 2 * once)


def test_it_is_taken_for_compiled_training_at_small_batches_and_larger_hidden_sizes():
    weight = torch.zeros(4 * MIN_HIDDEN, MIN_HIDDEN, requires_grad=True)
    assert pays_off(weight, MAX_BATCH, compiled=True)
    assert not pays_off(weight, MAX_BATCH + 1, compiled=True)
    assert not pays_off(weight, 4, compiled=False)
    assert not pays_off(weight[:, : MIN_HIDDEN - 1], 4, compiled=True)
    assert not pays_off(weight.detach(), 4, compiled=True)
    with torch.no_grad():
        assert not pays_off(weight, 4, compiled=True)


def test_a_backward_before_the_walk_is_recorded_is_refused():
    weight = torch.randn(8, 2, requires_grad=True)
    probes = RecurrentWeightGrad().probes(weight, steps=3, batch=2)
    with pytest.raises(RuntimeError, match="record"):
        torch.stack(probes).sum().backward()


def test_a_forward_and_backward_leave_no_graph_alive(monkeypatch):
    import gc
    import weakref

    owners = []
    init = RecurrentWeightGrad.__init__

    def tracked(self):
        init(self)
        owners.append(weakref.ref(self))

    monkeypatch.setattr(RecurrentWeightGrad, "__init__", tracked)
    monkeypatch.setattr(walker, "pays_off", lambda weight, batch, compiled: True)
    model = net("lstm", layers=2, variational={}).train()
    gc.disable()  # freed by reference counting alone, without the cycle collector
    try:
        out = model(inputs(batch=4, steps=5)).prediction
        out.sum().backward()
        del out
        assert len(owners) == 2 and all(owner() is None for owner in owners)
    finally:
        gc.enable()
