"""Step mode 'graph' (models/speed/graphs.py) on the CPU: the plan's round trip through tensors,
the tensor-only walk a graph records, and the CPU's fallback to compiled chunks. The
recording itself needs CUDA: tests/test_cuda.py."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from torch.utils._pytree import tree_flatten, tree_unflatten

import regbench.models.speed.graphs as graphs
from helpers import inputs, net
from regbench.models.cells import run_steps
from regbench.models.plan import StepPlan
from regbench.models.speed.graphs import (
    _Recorded,
    graphable,
    join_plan,
    recorded_count,
    split_plan,
    walk_function,
)
from regbench.models.speed.projection import project
from regbench.models.speed.steps import walk
from regbench.run.runtime import choose_step_mode

CASES = {
    "lstm variational (hidden mask)": ("lstm", {"variational": {}}),
    "lstm zoneout (per-step masks)": ("lstm", {"zoneout": {"z_c": 0.3, "z_h": 0.2}}),
    "gru recurrent_dropout per sequence (one shared mask)": (
        "gru",
        {"recurrent_dropout": {"per_step": False}},
    ),
    "lstm zoneout+recurrent_bn (step norms)": ("lstm", {"zoneout": {}, "recurrent_bn": {}}),
    "lstm bn_input per step (norm shift with b_ih)": ("lstm", {"bn_input": {}}),
    "rnn layer_norm (sum norm)": ("rnn", {"layer_norm": {}}),
}


def training_plan(cell: str, regularizers: dict):
    """Layer 0's training plan, projected input, state and recurrent weights."""
    model = net(cell, layers=1, **regularizers).train()
    layer = model.layers[0]
    x = inputs(batch=4, steps=8).transpose(0, 1)
    torch.manual_seed(3)
    plan = StepPlan(cell, 8, 4, layer.hidden_size, like=x)
    for reg in model.regularizers:
        reg.plan_steps(plan, 0)
    terms, b_hh = layer._input_terms(plan)
    gx = project(x, terms, plan)
    state = layer.initial_state(4, x)
    return plan, gx, state, layer.rnn.weight_hh_l0, b_hh


@pytest.mark.parametrize("case", CASES)
def test_a_plan_split_into_tensors_and_joined_walks_the_same(case):
    cell, regularizers = CASES[case]
    plan, gx, state, w_hh, b_hh = training_plan(cell, regularizers)
    layout, tensors = split_plan(plan)
    assert all(isinstance(t, torch.Tensor) for t in tensors)
    joined = join_plan(layout, tensors, cell, plan.shape(), gx)
    expected = run_steps(cell, gx.unbind(0), state, w_hh, b_hh, plan)
    got = run_steps(cell, gx.unbind(0), state, w_hh, b_hh, joined)
    torch.testing.assert_close(got.outputs, expected.outputs, rtol=0, atol=0)
    assert got.stats.keys() == expected.stats.keys()


def test_the_layout_is_the_same_for_fresh_masks_and_differs_with_the_fields():
    first, *_ = training_plan("lstm", {"zoneout": {}})
    second, *_ = training_plan("lstm", {"zoneout": {}})
    assert split_plan(first)[0] == split_plan(second)[0]
    other, *_ = training_plan("lstm", {"zoneout": {"z_c": 0.0}})
    assert split_plan(other)[0] != split_plan(first)[0]


def test_evaluation_plans_are_refused():
    model = net("lstm", layers=1, recurrent_bn={}).train()
    model(inputs())  # running statistics for the eval plan
    model.eval()
    plan = StepPlan("lstm", 7, 5, 6, like=inputs())
    model.regularizers[0].plan_steps(plan, 0)
    with pytest.raises(ValueError, match="running statistics"):
        split_plan(plan)


@pytest.mark.parametrize(
    "case", ["lstm zoneout+recurrent_bn (step norms)", "rnn layer_norm (sum norm)"]
)
@pytest.mark.slow
def test_the_recorded_function_gives_the_compiled_walk(case):
    cell, regularizers = CASES[case]
    plan, gx, state, w_hh, b_hh = training_plan(cell, regularizers)
    layout, tensors = split_plan(plan)
    fn = walk_function(cell, plan.shape(), layout, len(state), chunk=4)
    outputs, new_state, stats = fn(gx, *state, w_hh, b_hh, *tensors)
    expected = walk(cell, gx.unbind(0), state, w_hh, b_hh, plan, "eager")
    torch.testing.assert_close(outputs, expected.outputs, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(new_state, expected.state, atol=1e-5, rtol=1e-4)
    for name, pairs in expected.stats.items():
        means, variances = stats[name]
        assert means.shape[0] == len(pairs) and not means.requires_grad
        torch.testing.assert_close(means, torch.stack([m for m, _ in pairs]).detach())
        torch.testing.assert_close(variances, torch.stack([v for _, v in pairs]).detach())


@pytest.mark.slow  # compiles
def test_graph_mode_on_the_cpu_walks_compiled_chunks_and_records_nothing():
    def run(mode: str):
        model = net("gru", layers=1, zoneout={"z_h": 0.2}).train()
        model.set_step_mode(mode, chunk=4)
        torch.manual_seed(4)
        out = model(inputs(steps=8)).prediction
        out.square().sum().backward()
        return model, out.detach(), [p.grad for p in model.parameters()]

    model, out, grads = run("graph")
    _, expected, expected_grads = run("compile")
    plan = StepPlan("gru", 8, 5, 6, like=inputs())
    assert not graphable(inputs(), plan) and recorded_count(model.layers[0]) == 0
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    for a, b in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_auto_chooses_graphs_on_cuda():
    cuda = {"device": "cuda", "step_mode": "auto"}
    assert choose_step_mode({"execution": cuda}, None) == "graph"
    assert choose_step_mode({"execution": {**cuda, "step_mode": "compile"}}, None) == "compile"


def static_buffer_record(fn, samples, allow_unused_input):
    """`torch.cuda.make_graphed_callables`' contract on the CPU: outputs and input gradients
    live in buffers that every call overwrites, and a backward uses the latest call's
    activations."""
    latest: dict = {}

    class Replay(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *args):
            with torch.enable_grad():
                leaves = [a.detach().requires_grad_(a.requires_grad) for a in args]
                flat, latest["spec"] = tree_flatten(fn(*leaves))
            latest["leaves"], latest["flat"] = leaves, flat
            buffers = latest.setdefault("out", [torch.empty_like(o) for o in flat])
            for buffer, o in zip(buffers, flat, strict=True):
                buffer.copy_(o.detach())
            return tuple(b.detach() for b in buffers)

        @staticmethod
        def backward(ctx, *grads):
            leaves, flat = latest["leaves"], latest["flat"]
            wanted = [leaf for leaf in leaves if leaf.requires_grad]
            pairs = [(o, g) for o, g in zip(flat, grads, strict=True) if o.requires_grad]
            outputs, grads = zip(*pairs, strict=True)
            got = iter(
                torch.autograd.grad(outputs, wanted, grads, retain_graph=True, allow_unused=True)
            )
            buffers = latest.setdefault("grad", [torch.zeros_like(leaf) for leaf in leaves])
            result = []
            for leaf, buffer in zip(leaves, buffers, strict=True):
                if leaf.requires_grad:
                    buffer.copy_(next(got))
                result.append(buffer.detach() if leaf.requires_grad else None)
            return tuple(result)

    return lambda *args: tree_unflatten(list(Replay.apply(*args)), latest["spec"])


def test_recorded_gradients_accumulate_like_eager_ones(monkeypatch):
    def run(own_gradients: bool) -> torch.Tensor:
        if not own_gradients:  # the stand-in then shows the aliasing the copy prevents
            monkeypatch.setattr(graphs, "_own_gradients", lambda grads, _: None)
        weight = torch.randn(3, 3, requires_grad=True)
        x1, x2 = torch.randn(2, 3), torch.randn(2, 3)
        recorded = _Recorded(lambda x, w: (x @ w, x.sum()), (x1, weight), static_buffer_record)
        for x in (x1, x2):  # no zero_grad between: gradients accumulate
            recorded((x, weight))[0].square().sum().backward()
        expected = sum(2 * x.t() @ (x @ weight) for x in (x1, x2))
        return weight.grad, expected.detach()

    torch.testing.assert_close(*run(own_gradients=True))
    wrong, expected = run(own_gradients=False)
    assert not torch.allclose(wrong, expected)


def test_a_backward_through_an_overwritten_replay_raises_and_others_do_not():
    weight = torch.randn(3, 3, requires_grad=True)
    x1, x2 = torch.randn(2, 3), torch.randn(2, 3)
    recorded = _Recorded(lambda x, w: (x @ w,), (x1, weight), static_buffer_record)
    recorded((x1, weight))  # a forward whose backward never runs
    twice = recorded((x2, weight))[0].sum()
    twice.backward(retain_graph=True)
    twice.backward()  # through the same, latest replay: allowed
    first = recorded((x1, weight))[0].sum()
    recorded((x2, weight))[0].sum().backward()
    with pytest.raises(RuntimeError, match="replayed again"):
        first.backward()


class _Cycle:
    """A dead object only the cyclic collector frees (as a dead model holding graphs)."""

    def __init__(self) -> None:
        self.me = self


def test_recording_collects_dead_cycles_first_and_pauses_the_collector():
    dead = weakref.ref(_Cycle())
    full_collections = []
    seen = {}

    def on_collection(phase: str, info: dict) -> None:
        if phase == "start" and info["generation"] == 2:
            full_collections.append(info)

    def record(fn, samples, allow_unused_input):
        seen.update(
            collected=dead() is None,
            full_collection=bool(full_collections),
            collector_on=gc.isenabled(),
        )
        return fn

    gc.callbacks.append(on_collection)
    try:
        _Recorded(lambda x: (2 * x,), (torch.ones(2),), record)
    finally:
        gc.callbacks.remove(on_collection)
    assert seen == {"collected": True, "full_collection": True, "collector_on": False}
    assert gc.isenabled()


def test_a_failed_recording_turns_the_collector_back_on():
    def record(fn, samples, allow_unused_input):
        raise RuntimeError("capture failed")

    with pytest.raises(RuntimeError, match="capture failed"):
        _Recorded(lambda x: (x,), (torch.ones(2),), record)
    assert gc.isenabled()


def test_evaluation_plans_and_cpu_tensors_are_not_graphable():
    model = net("lstm", layers=1, recurrent_bn={}).train()
    model(inputs())
    model.eval()
    plan = StepPlan("lstm", 7, 5, 6, like=inputs())
    model.regularizers[0].plan_steps(plan, 0)
    assert not graphable(inputs(), plan)


def test_a_compiled_plan_that_projects_in_the_step_round_trips():
    cell, regularizers = CASES["rnn layer_norm (sum norm)"]
    model = net(cell, layers=1, **regularizers).train()
    layer = model.layers[0]
    x = inputs(batch=4, steps=8).transpose(0, 1)
    plan = StepPlan(cell, 8, 4, layer.hidden_size, like=x, compiled=True)
    model.regularizers[0].plan_steps(plan, 0)
    terms, b_hh = layer._input_terms(plan)
    given = project(x, terms, plan)
    assert given is x and plan.input_weight is not None
    layout, tensors = split_plan(plan)
    assert {"input_weight"} <= set(layout.names)
    joined = join_plan(layout, tensors, cell, plan.shape(), x)
    state = layer.initial_state(4, x)
    expected = run_steps(cell, x.unbind(0), state, layer.rnn.weight_hh_l0, b_hh, plan)
    got = run_steps(cell, x.unbind(0), state, layer.rnn.weight_hh_l0, b_hh, joined)
    torch.testing.assert_close(got.outputs, expected.outputs, rtol=0, atol=0)
