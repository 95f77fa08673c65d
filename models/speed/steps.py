"""How a custom cell walks its steps: eagerly, or as torch.compile'd chunks of K steps.

To keep compile time bounded, compilation gets one region: one chunk of
K steps (the whole loop when T ≤ K), compiled once with static shapes and called T/K times.
The unrolled chunk lets Inductor fuse each step's pointwise work; the Python loop over chunks
keeps compile time independent of T. Only training forwards (with autograd) are compiled;
evaluation walks eagerly, so a run compiles one graph per chunk length.

Mode 'eager' is the plain fallback; 'compile' always compiles; 'graph' compiles and, on CUDA,
records the whole compiled walk as CUDA graphs (models/speed/graphs.py; on the CPU it is
'compile'); 'auto' means 'graph' on CUDA, and on the CPU 'compile' when a run is long enough to
repay the one-off compile, else 'eager' (bench/run/runtime.py). The chunk length and the first
chunk's starting state were chosen by measurement: results/perf/README.md, "Compiled chunks".
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import Tensor

from regbench.models.cells import State, Walk, run_steps
from regbench.models.plan import STEP_NORMS, STEP_TENSORS, Stats, StepPlan

StepMode = Literal["eager", "compile", "graph"]
# As fast as 16 steps with a third less cold compile (results/perf/README.md).
DEFAULT_CHUNK = 8


def compiles(mode: StepMode) -> bool:
    """Whether a forward in step `mode` walks compiled chunks: training (autograd on) in
    'compile' or 'graph'. Evaluation walks eagerly."""
    return mode in ("compile", "graph") and torch.is_grad_enabled()


Chunk = tuple[Tensor, State, dict[str, list[Stats]]]


def _chunk(
    cell: str, gx: list[Tensor], state: State, w_hh: Tensor, b_hh: Tensor, plan: StepPlan
) -> Chunk:
    walk = run_steps(cell, gx, state, w_hh, b_hh, plan)
    return walk.outputs, walk.state, walk.stats


@functools.cache
def compiled_chunk() -> Callable[..., Chunk]:
    """The chunk function under torch.compile (one per process; graphs cached by shape and
    plan structure, so one process can hold the graphs of many variants and sizes)."""
    import torch._dynamo

    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    return torch.compile(_chunk, dynamic=False, fullgraph=True)


def chunk_length(steps: int, target: int = DEFAULT_CHUNK) -> int:
    """A chunk length near `target` that divides `steps` (one compiled graph), or `target`
    (a second graph for the remainder) when `steps` has no divisor between 4 and `target`."""
    divisor = max(d for d in range(1, min(steps, target) + 1) if steps % d == 0)
    return divisor if divisor >= 4 or steps <= target else target


def walk(
    cell: str,
    gx: Sequence[Tensor],
    state: State,
    w_hh: Tensor,
    b_hh: Tensor,
    plan: StepPlan,
    mode: StepMode = "eager",
    chunk: int = DEFAULT_CHUNK,
) -> Walk:
    """Run the recurrence over per-step inputs `gx`, eagerly or in compiled chunks ('graph'
    walks compiled chunks here; the layer records them as CUDA graphs on CUDA)."""
    if mode == "eager" or not torch.is_grad_enabled():
        return run_steps(cell, gx, state, w_hh, b_hh, plan)
    fn = compiled_chunk()
    chunk = chunk_length(len(gx), chunk)
    if _differentiable(gx[0], w_hh, b_hh, plan):
        state = _tracked(state)
    outputs: list[Tensor] = []
    stats: dict[str, list[Stats]] = {}
    for start in range(0, len(gx), chunk):
        stop = min(len(gx), start + chunk)
        out, state, used = fn(
            cell, list(gx[start:stop]), state, w_hh, b_hh, plan.window(start, stop)
        )
        outputs.append(out)
        for name, per_step in used.items():
            stats.setdefault(name, []).extend(per_step)
    return Walk(torch.cat(outputs), state, stats)


def _tracked(state: State) -> State:
    """A starting state (zeros, or one carried over detached) as leaves requiring grad, so
    that the first chunk runs the graph compiled for all later ones: Dynamo guards on
    requires_grad and would compile a second graph for it, a large part of a cold compile
    (results/perf/README.md). The price is the starting state's gradient: one (B×G)·(G×H)
    product, and step 0's pointwise terms, per layer and training step. Only for walks that
    take gradients anyway (`_differentiable`): a frozen layer's output stays without grad."""
    if all(s.requires_grad for s in state):
        return state
    return tuple(s if s.requires_grad else s.detach().requires_grad_() for s in state)


def _differentiable(gx: Tensor, w_hh: Tensor, b_hh: Tensor, plan: StepPlan) -> bool:
    """Whether any of a walk's inputs takes a gradient: its inputs, recurrent weights, or
    what the plan adds (in-step input weights, W_hh probes, norm gains and shifts)."""
    norms = [norm for name in STEP_NORMS if (norm := getattr(plan, name)) is not None]
    probes = list(plan.weight_probes or ())[:1]
    tensors = [gx, w_hh, b_hh, *(getattr(plan, name) for name in STEP_TENSORS), *probes]
    tensors += [t for norm in norms for t in (norm.weight, norm.bias)]
    return any(t is not None and t.requires_grad for t in tensors)
