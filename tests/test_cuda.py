"""On a CUDA device: every variant trains there and agrees with the CPU, masks keep their
rates, and step mode 'graph' (CUDA graphs, models/speed/graphs.py) gives the eager walk's outputs,
gradients and running statistics. Skipped without CUDA (CI has none); run on a lent GPU with
`python -m pytest tests/test_cuda.py`."""

from __future__ import annotations

import copy
import gc
import json

import pytest
import torch

from helpers import SPEC, net
from regbench.models.speed.graphs import recorded_count
from regbench.models.variants import RECIPES, REGULARIZERS, defined_for
from regbench.models.variants.masks import bernoulli_mask, effective_probability, keep_mask

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

GRAPH_CASES = {
    "lstm zoneout+recurrent_bn": (
        "lstm",
        {"zoneout": {"z_c": 0.3, "z_h": 0.2}, "recurrent_bn": {}},
    ),
    "lstm variational+weight_drop": ("lstm", {"variational": {}, "weight_drop": {"p": 0.3}}),
    "gru recurrent_dropout per sequence": ("gru", {"recurrent_dropout": {"per_step": False}}),
    "rnn layer_norm": ("rnn", {"layer_norm": {}}),
}
FEATURE_VARIANTS = [  # the variants defined for feature inputs (no embedding dropout)
    v
    for v in [*REGULARIZERS, *RECIPES]
    if not any(REGULARIZERS[k].needs_tokens for k in RECIPES.get(v, (v,)))
]


def batch(size: int, seed: int, steps: int = 8) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(size, steps, SPEC.features, generator=generator).cuda()


def train_steps(cell: str, regularizers: dict, mode: str, sizes=(5, 5, 5)):
    """Forward+backward on fresh batches; each step's output and gradients, and the buffers."""
    model = net(cell, layers=2, hidden=16, **regularizers).cuda().train()
    model.set_step_mode(mode, chunk=4)
    torch.manual_seed(7)
    steps = []
    for seed, size in enumerate(sizes):
        model.zero_grad(set_to_none=True)
        out = model(batch(size, seed)).prediction
        out.square().sum().backward()
        steps.append((out.detach().clone(), [p.grad.clone() for p in model.parameters()]))
    return model, steps, [b.clone() for b in model.buffers()]


def assert_same_training(got, expected) -> None:
    for (out, grads), (out_e, grads_e) in zip(got[1], expected[1], strict=True):
        torch.testing.assert_close(out, out_e, atol=1e-5, rtol=1e-4)
        for a, b in zip(grads, grads_e, strict=True):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)
    for a, b in zip(got[2], expected[2], strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("case", GRAPH_CASES)
def test_cuda_graphs_replay_the_eager_walk(case):
    cell, regularizers = GRAPH_CASES[case]
    graphed = train_steps(cell, regularizers, "graph")
    assert_same_training(graphed, train_steps(cell, regularizers, "eager"))
    assert [recorded_count(layer) for layer in graphed[0].layers] == [1, 1]


def test_a_new_batch_size_records_a_second_graph():
    cell, regularizers = GRAPH_CASES["lstm zoneout+recurrent_bn"]
    sizes = (5, 3, 5)
    graphed = train_steps(cell, regularizers, "graph", sizes)
    assert_same_training(graphed, train_steps(cell, regularizers, "eager", sizes))
    assert recorded_count(graphed[0].layers[0]) == 2


def test_backward_through_an_overwritten_replay_raises():
    model = net("lstm", layers=1, hidden=16, zoneout={}).cuda().train()
    model.set_step_mode("graph", chunk=4)
    model(batch(5, 0)).prediction.sum().backward()  # records
    first = model(batch(5, 1)).prediction.sum()
    second = model(batch(5, 2)).prediction.sum()
    second.backward()  # the latest replay's backward is fine
    with pytest.raises(RuntimeError, match="replayed again"):
        first.backward()


def test_gradients_accumulate_across_replays_as_eagerly():
    def accumulated(mode: str) -> list[torch.Tensor]:
        model = net("lstm", layers=1, hidden=16, zoneout={}).cuda().train()
        model.set_step_mode(mode, chunk=4)
        torch.manual_seed(7)
        for seed in range(3):  # no zero_grad between the steps
            model(batch(5, seed)).prediction.square().sum().backward()
        return [p.grad for p in model.parameters()]

    for a, b in zip(accumulated("graph"), accumulated("eager"), strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)


def test_a_carried_state_starts_the_next_replay():
    """Truncated BPTT: the state one batch ends in starts the next one, detached."""

    def carried(mode: str) -> list[torch.Tensor]:
        model = net("lstm", layers=2, hidden=16, zoneout={}).cuda().train()
        model.set_step_mode(mode, chunk=4)
        torch.manual_seed(7)
        state, outputs = None, []
        for seed in range(3):
            model.zero_grad(set_to_none=True)
            out = model(batch(5, seed), state=state)
            out.prediction.square().sum().backward()
            state = [tuple(s.detach() for s in layer_state) for layer_state in out.state]
            outputs.append(out.prediction.detach().clone())
        return outputs

    for a, b in zip(carried("graph"), carried("eager"), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_a_dead_models_graphs_do_not_break_a_later_capture(monkeypatch):
    """A dead model's graphs, freed by the cyclic collector inside another model's capture,
    invalidated it (cudaErrorStreamCaptureInvalidated): recording collects first. Here the
    collector runs at the start of every capture, after the first model died (recorded graphs
    are only ever freed by the collector: see models/speed/graphs.py)."""
    first = net("lstm", layers=1, hidden=16, zoneout={}).cuda().train()
    first.set_step_mode("graph", chunk=4)
    first(batch(5, 0)).prediction.sum().backward()
    assert recorded_count(first.layers[0]) == 1
    begin = torch.cuda.CUDAGraph.capture_begin

    def begin_then_collect(self, *args, **kwargs):
        begin(self, *args, **kwargs)
        gc.collect()

    monkeypatch.setattr(torch.cuda.CUDAGraph, "capture_begin", begin_then_collect)
    gc.disable()
    try:
        del first
        second = net("lstm", layers=1, hidden=24, zoneout={}).cuda().train()
        second.set_step_mode("graph", chunk=4)
        second(batch(5, 1)).prediction.sum().backward()
    finally:
        gc.enable()
    assert recorded_count(second.layers[0]) == 1


def test_an_evaluation_forward_with_autograd_is_not_recorded():
    model = net("lstm", layers=1, hidden=16, recurrent_bn={}).cuda().train()
    model.set_step_mode("graph", chunk=4)
    model(batch(5, 0)).prediction.sum().backward()
    model.eval()
    model(batch(5, 1)).prediction.sum().backward()  # running statistics, autograd on
    assert recorded_count(model.layers[0]) == 1


def test_evaluation_is_not_recorded_and_equals_eager():
    model = net("lstm", layers=1, hidden=16, recurrent_bn={}).cuda().train()
    model.set_step_mode("graph", chunk=4)
    model(batch(5, 0)).prediction.sum().backward()
    model.eval()
    with torch.no_grad():
        got = model(batch(5, 1)).prediction
        assert recorded_count(model.layers[0]) == 1  # the training graph only
        model.set_step_mode("eager")  # drops the graph
        expected = model(batch(5, 1)).prediction
    torch.testing.assert_close(got, expected)
    assert recorded_count(model.layers[0]) == 0


@pytest.mark.parametrize("variant", FEATURE_VARIANTS)
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_every_variant_on_cuda_evaluates_as_on_the_cpu_and_trains(variant, cell):
    if not defined_for(variant, cell):
        pytest.skip(f"{variant} is not defined for {cell}")
    keys = RECIPES.get(variant, (variant,))
    model = net(cell, layers=2, hidden=16, **{k: {} for k in keys}).train()
    model(batch(5, 0).cpu())  # running statistics, where a variant keeps them
    x = batch(5, 1)
    model.eval()
    with torch.no_grad(), torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        expected = model(x.cpu()).prediction
        got = model.cuda()(x).prediction
    torch.testing.assert_close(got.cpu(), expected, atol=1e-5, rtol=1e-4)
    model.train().set_step_mode("eager")
    out = model(x)
    loss = out.prediction.square().mean() + (0 if out.penalty is None else out.penalty)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


PADDED_CASES = {
    "recurrent_bn": {"recurrent_bn": {}},
    "bn_input per frame": {"bn_input": {"statistics": "frame"}},
    "bn_input per sequence": {"bn_input": {"statistics": "sequence"}},
    "ar_tar": {"ar_tar": {}},
}


@pytest.mark.parametrize(
    ("case", "mode"),
    [(case, mode) for case in PADDED_CASES for mode in ("eager", "graph") if case != "ar_tar"]
    + [("ar_tar", "eager")],  # a fused-kernel variant: no step mode
)
def test_a_padded_batch_trains_on_cuda_as_on_the_cpu(case, mode):
    """Batch statistics over the running sequences and AR/TAR over valid steps (the per-step
    masks stacked into a recorded graph in mode 'graph') as on the CPU, where
    tests/test_padded_batches.py checks them against the padding's own values."""
    lengths = torch.tensor([8, 5, 2, 8, 1, 8, 8, 8, 8, 8, 8, 8])  # 8 run to the end
    valid = torch.arange(8).unsqueeze(0) < lengths.unsqueeze(1)
    x = batch(len(lengths), 3).cpu()
    x[~valid] = 100.0
    model = net("lstm", layers=2, hidden=16, kind="classify_last", **PADDED_CASES[case])
    on_gpu = copy.deepcopy(model).cuda().train()
    on_gpu.set_step_mode(mode, chunk=4)

    def step(m, device):
        out = m.train()(x.to(device), lengths.to(device))
        loss = out.prediction.square().sum() + (0 if out.penalty is None else out.penalty)
        loss.backward()
        return out.prediction.detach().cpu(), {
            n: p.grad.cpu() for n, p in m.named_parameters() if p.grad is not None
        }

    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        expected, expected_grads = step(model, "cpu")
        got, grads = step(on_gpu, "cuda")
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert grads.keys() == expected_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected_grads[name], atol=1e-4, rtol=1e-3, msg=name)
    for (name, a), b in zip(on_gpu.named_buffers(), model.buffers(), strict=True):
        torch.testing.assert_close(a.cpu(), b, atol=1e-5, rtol=1e-4, msg=name)
    recorded = [recorded_count(layer) for layer in on_gpu.layers]
    assert recorded == ([1, 1] if mode == "graph" else [0, 0])


@pytest.mark.parametrize("prob", [0.5, 0.25, 0.4, 0.1, 0.05])
def test_masks_on_cuda_keep_their_probability(prob):
    like = torch.empty(0, device="cuda")
    mask = bernoulli_mask((400, 1000), prob, like)
    assert mask.is_cuda
    q = effective_probability(prob)
    sigma = (q * (1 - q) / mask.numel()) ** 0.5
    assert abs(mask.float().mean().item() - q) < 5 * sigma
    scaled = keep_mask((400, 1000), prob, like)  # keeps with probability ≈ 1 − prob
    spread = (prob * (1 - prob) / scaled.numel()) ** 0.5 / (1 - prob)
    assert abs(scaled.mean().item() - 1.0) < 5 * spread + 1e-4


def test_a_lightning_run_on_the_gpu_uses_cuda_graphs(tmp_path, tiny, monkeypatch):
    import regbench.models.speed.walker as walker
    from regbench.plan.config import resolve
    from regbench.plan.jobs import Job
    from regbench.run.rundir import RunDir
    from regbench.run.train import Runtime, train

    overrides = {**tiny["seq_digits"], "execution.device": "cuda"}
    config = resolve("seq_digits", "zoneout", "lstm", 0, overrides)
    run = RunDir(tmp_path / Job(config).id)
    replays = []
    graphed_walk = walker.graphed_walk
    monkeypatch.setattr(
        walker, "graphed_walk", lambda *a, **k: replays.append(1) or graphed_walk(*a, **k)
    )
    result = train(config, run.path, Runtime(wandb="disabled"))
    assert replays
    assert run.state() == "done"
    assert json.loads(run.provenance.read_text())["hardware"]
    assert result["step_mode"] == "graph"
    metric = result["metric"]
    assert 0.0 <= result["test"][metric] <= 1.0
