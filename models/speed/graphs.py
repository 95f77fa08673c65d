"""Step mode 'graph': a custom cell's compiled training walk recorded as CUDA graphs.

On a GPU one step of a custom cell is a few small kernels (a (B×H)·(H×G) product and the
step's fused pointwise work), each shorter than launching it takes the CPU, so the eager and
compiled walks are bound by launches, not by the GPU.
`torch.cuda.make_graphed_callables` records the walk's forward kernels and its backward
kernels once, as two CUDA graphs, and each training step replays each of them with a single
launch. Inside, the steps run as compiled K-step chunks (models/speed/steps.py).

A graph reads and writes static buffers: each call copies its tensors (W_ih x, the state,
W_hh and b_hh, the plan's masks and norm gains) into them, and the tensors it returns live in
them until the same graph replays again. One graph is recorded per layout (the cell, the chunk
length, which plan fields are set and how, and every tensor's shape, dtype and requires_grad);
recording costs three warm-up forward+backward passes, which also compile the chunks, and
one of each to capture. Evaluation (a layer in eval mode, no autograd, or running statistics)
and CPU tensors take the unrecorded walk.

Replaying overwrites the activations the backward graph reads and the outputs it returned, so
a replay's backward must run before the same graph replays again. That is how a training step
uses it; a backward through an overwritten replay raises when it reaches the graph (ops after
the layer that saved its outputs have by then run on overwritten values: the error says the
backward is wrong, it does not undo it). A layer records at most MAX_GRAPHS layouts, and a
change of step mode drops its graphs.

A CUDA graph destroyed while another is being captured invalidates that capture
(cudaErrorStreamCaptureInvalidated). `make_graphed_callables` keeps its graphs in the closure
of an autograd class it defines, and a class always sits in a reference cycle, so recorded
graphs (a dead model's, or a layer's after `forget`) are freed only by Python's cyclic
collector, whenever it next runs, and `torch.cuda.graph` collects before a capture only when
`torch.compiler.config.force_cudagraph_gc` is set (off by default); results/perf/README.md
(GPU section) records the capture that failed that way. Recording therefore collects first
and pauses the collector until both graphs are captured (also through the warm-up passes,
which compile: the cycles they leave wait until it resumes).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import weakref
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from regbench.models.cells import State, Walk
from regbench.models.plan import PER_STEP_FIELDS, STEP_NORMS, STEP_TENSORS, Norm, StepPlan
from regbench.models.speed.steps import walk

# Layouts a layer records at most (each holds its own memory); further shapes (say, batches
# padded to their own length) walk compiled chunks unrecorded.
MAX_GRAPHS = 8

# One dict of recorded graphs per layer, freed with the layer (and never deep-copied with it).
_RECORDED: weakref.WeakKeyDictionary[nn.Module, dict[Hashable, _Recorded]] = (
    weakref.WeakKeyDictionary()
)


def graphable(x: Tensor, plan: StepPlan) -> bool:
    """Whether a walk over `x` is recorded: a training plan (no running statistics, no
    weight-gradient probes) with autograd on, on CUDA. Others walk unrecorded."""
    norms = (getattr(plan, name) for name in STEP_NORMS)
    training = all(norm is None or norm.stats is None for norm in norms)
    return x.is_cuda and torch.is_grad_enabled() and training and plan.weight_probes is None


@dataclass(frozen=True)
class PlanLayout:
    """What of a StepPlan is fixed in a recorded graph: the names of the tensor arguments, and
    for each set field how it is given (per-step tensors stacked, one shared tensor, a rate,
    or a norm's kind, eps and whether it has a shift)."""

    names: tuple[str, ...]
    fields: tuple[tuple[str, Hashable], ...]


def split_plan(plan: StepPlan) -> tuple[PlanLayout, tuple[Tensor, ...]]:
    """A training plan as its layout and its tensors (per-step sequences stacked to one)."""
    if plan.weight_probes is not None:
        raise ValueError("weight-gradient probes are taken on the CPU only, never recorded")
    tensors: dict[str, Tensor] = {}
    fields: list[tuple[str, Hashable]] = []
    for name in STEP_TENSORS:
        if (value := getattr(plan, name)) is not None:
            tensors[name] = value
            fields.append((name, "tensor"))
    for name in PER_STEP_FIELDS:
        value = getattr(plan, name)
        if isinstance(value, (list, tuple)):
            tensors[name], how = torch.stack(list(value)), "per_step"
        elif isinstance(value, Tensor):
            tensors[name], how = value, "shared"
        elif value is not None:
            how = float(value)
        else:
            continue
        fields.append((name, how))
    for name in STEP_NORMS:
        norm = getattr(plan, name)
        if norm is None:
            continue
        if norm.stats is not None:
            raise ValueError(f"{name}: running statistics are for evaluation, never recorded")
        tensors[f"{name}.weight"] = norm.weight
        if norm.bias is not None:
            tensors[f"{name}.bias"] = norm.bias
        fields.append((name, (norm.kind, norm.eps, norm.bias is not None)))
    return PlanLayout(tuple(tensors), tuple(fields)), tuple(tensors.values())


def join_plan(
    layout: PlanLayout,
    tensors: Sequence[Tensor],
    cell: str,
    shape: tuple[int, int, int],
    like: Tensor,
) -> StepPlan:
    """The plan `split_plan` took apart, for `cell`, (steps, batch, hidden) `shape` and
    tensors like `like`."""
    given = dict(zip(layout.names, tensors, strict=True))
    plan = StepPlan(cell, *shape, like=like, compiled=True)
    for name, how in layout.fields:
        if name in STEP_NORMS:
            kind, eps, _ = how
            value: object = Norm(kind, given[f"{name}.weight"], given.get(f"{name}.bias"), eps)
        elif how == "per_step":
            value = list(given[name].unbind(0))
        elif how in ("shared", "tensor"):
            value = given[name]
        else:
            value = how
        setattr(plan, name, value)
    return plan


def walk_function(
    cell: str, shape: tuple[int, int, int], layout: PlanLayout, state_size: int, chunk: int
) -> Callable[..., tuple[Tensor, State, dict[str, tuple[Tensor, Tensor]]]]:
    """The compiled walk as a function of tensors alone, (gx, *state, w_hh, b_hh, *plan
    tensors) → (outputs, state, {norm: (means, variances)}), as a graph records it."""

    def run(gx: Tensor, *rest: Tensor) -> tuple[Tensor, State, dict[str, tuple[Tensor, Tensor]]]:
        state, (w_hh, b_hh) = rest[:state_size], rest[state_size : state_size + 2]
        plan = join_plan(layout, rest[state_size + 2 :], cell, shape, gx)
        walked = walk(cell, gx.unbind(0), tuple(state), w_hh, b_hh, plan, "compile", chunk)
        stats = {
            name: tuple(torch.stack(column).detach() for column in zip(*pairs, strict=True))
            for name, pairs in walked.stats.items()
        }
        return walked.outputs, walked.state, stats

    return run


def graphed_walk(
    owner: nn.Module,
    gx: Tensor,
    state: State,
    w_hh: Tensor,
    b_hh: Tensor,
    plan: StepPlan,
    chunk: int,
) -> Walk:
    """The walk of `gx` (T, B, G), replayed from `owner`'s graph for this layout (recorded on
    first use), or walked compiled when `owner` already holds MAX_GRAPHS other layouts."""
    layout, plan_tensors = split_plan(plan)
    args = (gx, *state, w_hh, b_hh, *plan_tensors)
    key = (plan.cell, chunk, len(state), layout, _precision(), *(_signature(a) for a in args))
    recorded = _RECORDED.setdefault(owner, {})
    if key not in recorded:
        if len(recorded) >= MAX_GRAPHS:
            return walk(plan.cell, gx.unbind(0), state, w_hh, b_hh, plan, "compile", chunk)
        fn = walk_function(plan.cell, plan.shape(), layout, len(state), chunk)
        recorded[key] = _Recorded(fn, args)
    outputs, new_state, stats = recorded[key](args)
    per_step = {
        name: list(zip(means.unbind(0), variances.unbind(0), strict=True))
        for name, (means, variances) in stats.items()
    }
    return Walk(outputs, tuple(new_state), per_step)


def recorded_count(owner: nn.Module) -> int:
    """How many graphs `owner` has recorded (one per layout seen in training)."""
    return len(_RECORDED.get(owner, {}))


def forget(owner: nn.Module) -> None:
    """Drop `owner`'s graphs and their memory (when its step mode changes)."""
    _RECORDED.pop(owner, None)


def _signature(t: Tensor) -> Hashable:
    return (tuple(t.shape), t.dtype, t.device, t.requires_grad)


def _precision() -> Hashable:
    """What else decides the recorded kernels: autocast and the TF32 switches."""
    cuda = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    return torch.is_autocast_enabled(), torch.get_float32_matmul_precision(), cuda


class _Recorded:
    """One layout's forward and backward graphs, the guard on overwritten replays, and
    gradients of its own.

    `record` is `torch.cuda.make_graphed_callables` (a stand-in with the same contract in the
    CPU tests): its callable returns outputs, and its backward gradients, in static buffers
    that the next replay overwrites. Gradients are cloned before autograd sees them, since
    autograd may keep a gradient tensor as a parameter's `.grad` and accumulate into it."""

    def __init__(
        self,
        fn: Callable[..., object],
        args: tuple[Tensor, ...],
        record: Callable[..., Callable[..., Any]] = torch.cuda.make_graphed_callables,
    ) -> None:
        samples = tuple(a.detach().clone().requires_grad_(a.requires_grad) for a in args)
        with _collector_paused():
            self.graphed = record(fn, samples, allow_unused_input=True)
        self.replays = 0

    def __call__(self, args: tuple[Tensor, ...]) -> Any:
        self.replays += 1
        result = self.graphed(*args)
        node = result[0].grad_fn
        if node is not None:
            node.register_prehook(functools.partial(self._check, self.replays))
            node.register_hook(_own_gradients)
        return result

    def _check(self, replay: int, grads: tuple[Tensor, ...]) -> None:
        if replay != self.replays:
            raise RuntimeError(
                "a custom cell's CUDA graph replayed again before this forward's backward "
                "ran, overwriting the activations it needs; run each training forward's "
                "backward before the next forward, or use step mode 'compile'"
            )


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Dead objects (and the CUDA graphs they hold) collected now, and none until the block
    ends: no graph is destroyed during a capture inside it."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _own_gradients(
    grad_inputs: tuple[Tensor | None, ...], grad_outputs: tuple[Tensor | None, ...]
) -> tuple[Tensor | None, ...]:
    """The graph's input gradients, copied out of its static buffers."""
    return tuple(None if g is None else g.clone() for g in grad_inputs)
