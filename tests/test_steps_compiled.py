"""Compiled K-step chunks give the eager walk's outputs, gradients and running statistics;
with few input features they also project the inputs in the step."""

from __future__ import annotations

import pytest
import torch

import regbench.models.speed.projection as projection
from helpers import fused_and_custom, inputs, net
from regbench.models.layer import RecurrentLayer
from regbench.models.plan import StepPlan
from regbench.models.speed.projection import IN_STEP_FEATURES, project, project_in_step

CASES = {
    "lstm zoneout+recurrent_bn": (
        "lstm",
        {"zoneout": {"z_c": 0.3, "z_h": 0.2}, "recurrent_bn": {}},
    ),
    "lstm variational+weight_drop": ("lstm", {"variational": {}, "weight_drop": {"p": 0.3}}),
    "gru zoneout+layer_norm": ("gru", {"zoneout": {"z_h": 0.2}, "layer_norm": {}}),
    "lstm sequence-wise bn_input": ("lstm", {"bn_input": {"statistics": "sequence"}}),
    "rnn layer_norm (sum norm)": ("rnn", {"layer_norm": {}}),
}


def forward_backward(cell: str, regularizers: dict, mode: str):
    model = net(cell, layers=1, **regularizers).train()
    model.set_step_mode(mode, chunk=4)
    torch.manual_seed(11)
    out = model(inputs(steps=8)).prediction
    out.square().sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    buffers = [b.clone() for b in model.buffers()]
    return out.detach(), grads, buffers


@pytest.mark.parametrize("case", CASES)
def test_compiled_chunks_match_the_eager_walk(case):
    cell, regularizers = CASES[case]
    eager = forward_backward(cell, regularizers, "eager")
    compiled = forward_backward(cell, regularizers, "compile")
    torch.testing.assert_close(compiled[0], eager[0], atol=1e-5, rtol=1e-4)
    for a, b in zip(compiled[1], eager[1], strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)
    rows = 1 if "sequence-wise" in case else 8  # running statistics: pooled, or one row per step
    for a, b in zip(compiled[2], eager[2], strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
        assert a.shape[0] == rows


@pytest.mark.parametrize(("cell", "features"), [("lstm", 1), ("gru", 3), ("rnn", 2)])
def test_compiled_steps_that_project_their_inputs_match_the_fused_kernel(
    cell, features, monkeypatch
):
    """With few input features, compiled CPU steps compute W_ih x_t themselves."""
    decided = []
    monkeypatch.setattr(
        projection,
        "project_in_step",
        lambda x, plan: decided.append(project_in_step(x, plan)) or decided[-1],
    )
    torch.manual_seed(0)
    layer = RecurrentLayer(cell, features, 6)
    layer.step_mode, layer.chunk = "compile", 4
    x = torch.randn(8, 3, features, requires_grad=True)
    (fused, _, grads_fused), (custom, _, grads_custom) = fused_and_custom(layer, x)
    torch.testing.assert_close(custom, fused, atol=1e-5, rtol=1e-4)
    for a, b in zip(grads_custom, grads_fused, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)
    assert decided == [True]


@pytest.mark.parametrize(
    ("features", "compiled", "in_step"),
    [
        (1, True, True),
        (IN_STEP_FEATURES, True, True),
        (IN_STEP_FEATURES + 1, True, False),
        (1, False, False),
    ],
)
def test_which_inputs_the_steps_project(features, compiled, in_step):
    layer = RecurrentLayer("lstm", features, 6)
    x = torch.randn(8, 3, features)
    plan = StepPlan("lstm", 8, 3, 6, like=x, compiled=compiled)
    terms, _ = layer._input_terms(plan)
    given = project(x, terms, plan)
    assert project_in_step(x, plan) == in_step
    assert (given is x) == in_step and (plan.input_weight is not None) == in_step
    assert given.shape[-1] == (features if in_step else 24)


def test_a_per_step_input_norm_takes_the_input_bias_when_the_steps_project():
    model = net("lstm", layers=1, bn_input={}).train()
    layer = model.layers[0]
    x = inputs(steps=8).transpose(0, 1)
    plan = StepPlan("lstm", 8, 5, layer.hidden_size, like=x, compiled=True)
    model.regularizers[0].plan_steps(plan, 0)
    terms, _ = layer._input_terms(plan)
    project(x, terms, plan)
    assert plan.input_bias is None
    torch.testing.assert_close(plan.step_input_norm.bias, layer.rnn.bias_ih_l0)


def test_initial_states_are_distinct_tensors():
    layer = RecurrentLayer("lstm", 3, 6)
    h, c = layer.initial_state(4, torch.zeros(1))
    assert h is not c and h.data_ptr() != c.data_ptr()


@pytest.mark.slow  # about a minute of compiles
def test_chunks_recompile_for_a_new_batch_after_other_variants_ran():
    """A worker trains several jobs in one process: compiled chunks of one variant (with a
    carried state) are cached when another variant's chunks recompile for a smaller batch."""
    carried = net("lstm", layers=2, zoneout={}).train()
    carried.set_step_mode("compile", chunk=4)
    state = None
    for _ in range(2):
        out = carried(inputs(steps=8), state=state)
        out.prediction.square().sum().backward()
        state = [tuple(s.detach() for s in layer_state) for layer_state in out.state]
    model = net("lstm", layers=1, recurrent_bn={}).train()
    model.set_step_mode("compile", chunk=4)
    model(inputs(steps=8)).prediction.sum().backward()
    out = model(inputs(batch=3, steps=8)).prediction
    out.sum().backward()
    assert out.shape[0] == 3


@pytest.mark.parametrize(("carried", "hidden"), [(False, 13), (True, 14)])
def test_the_first_chunk_reuses_the_later_chunks_graph(carried, hidden):
    """A starting state without grad (zeros, or carried over detached) runs the same compiled
    graph as the chunks after it, instead of one of its own (a quarter of a cold compile).
    Each case uses a hidden size no other test compiles."""
    from torch._dynamo.utils import counters

    model = net("lstm", layers=1, hidden=hidden, zoneout={}).train()
    state = None
    if carried:  # a state from an eager forward: nothing compiled yet
        model.set_step_mode("eager")
        state = [tuple(s.detach() for s in model(inputs(steps=8)).state[0])]
    model.set_step_mode("compile", chunk=4)
    before = counters["stats"]["unique_graphs"]
    out = model(inputs(steps=8), state=state)
    out.prediction.sum().backward()
    assert counters["stats"]["unique_graphs"] - before == 1
    assert state is None or not any(s.requires_grad or s.grad is not None for s in state[0])


def test_a_frozen_layer_stays_without_grad_when_compiled():
    """No input of the walk takes a gradient, so its starting state is left as it is."""
    model = net("lstm", layers=1, hidden=6, zoneout={}).train().requires_grad_(False)
    model.set_step_mode("compile", chunk=4)
    out = model(inputs(steps=8))
    assert not out.prediction.requires_grad
    assert not any(s.requires_grad for s in out.state[0])
