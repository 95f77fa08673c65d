"""One recurrent layer: the fused kernel where the recurrence is intact, custom steps where not.

The parameters always live in a one-layer `nn.LSTM` / `nn.GRU` / `nn.RNN`, so every variant
has the same parameter count and initialisation, and the custom path can be checked against
the fused one with identical weights. The layer decides what a custom walk computes (the
regularizers' plan, which bias goes where, which steps batch statistics count); the speed
layer (models/speed/) decides how.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import Tensor, nn

from regbench.models.cells import GATES, State, valid_steps
from regbench.models.plan import STEP_NORMS, Norm, Stats, StepPlan
from regbench.models.speed import DEFAULT_CHUNK, InputProjection, StepMode, compiles, walk_custom
from regbench.models.variants.base import Regularizer

FUSED: dict[str, type[nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
FUSED_OPS = {"gru": torch.gru, "rnn": torch.rnn_tanh}  # the ops behind them (LSTM: torch.lstm)


class RecurrentLayer(nn.Module):
    """A single-layer LSTM, GRU or tanh-RNN over time-major input (T, B, F)."""

    def __init__(self, cell: str, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.cell = cell
        self.hidden_size = hidden_size
        self.rnn = FUSED[cell](input_size, hidden_size, num_layers=1)
        self.step_mode: StepMode = "eager"
        self.chunk = DEFAULT_CHUNK

    def initial_state(self, batch: int, like: Tensor) -> State:
        """Zeros, one tensor per part of the state. Never one tensor twice: Dynamo guards
        compiled chunks on their inputs not aliasing, and on torch 2.13 explaining a failed
        aliasing guard crashed (TypeError) once another variant's chunks were cached."""
        parts = 2 if self.cell == "lstm" else 1
        return tuple(like.new_zeros(batch, self.hidden_size) for _ in range(parts))

    def forward(
        self,
        x: Tensor,
        state: State | None,
        regularizers: Sequence[Regularizer],
        index: int,
        custom: bool,
        lengths: Tensor | None = None,
    ) -> tuple[Tensor, State]:
        """`lengths` (B,): the valid steps of each sequence in a padded batch (batch
        statistics then leave the padding out; the steps themselves run over all of x)."""
        w_hh = self.rnn.weight_hh_l0
        for reg in regularizers:
            w_hh = reg.recurrent_weight(w_hh, index)
        if custom:
            state = self.initial_state(x.shape[1], x) if state is None else state
            return self._custom(x, state, w_hh, regularizers, index, lengths)
        return self._fused(x, state, w_hh)

    def _fused(self, x: Tensor, state: State | None, w_hh: Tensor) -> tuple[Tensor, State]:
        """The fused kernel; without a state it starts from zeros itself. A rewritten W_hh
        (weight-drop) goes to the kernel's op directly with the layer's other weights."""
        if w_hh is not self.rnn.weight_hh_l0:
            return self._fused_with(x, state, w_hh)
        hx_arg = None
        if state is not None:
            hx = tuple(s.unsqueeze(0) for s in state)
            hx_arg = hx if self.cell == "lstm" else hx[0]
        out, new = self.rnn(x, hx_arg)
        new = new if self.cell == "lstm" else (new,)
        return out, tuple(s.squeeze(0) for s in new)

    def _fused_with(self, x: Tensor, state: State | None, w_hh: Tensor) -> tuple[Tensor, State]:
        """`nn.LSTM`'s (GRU's, RNN's) own op with W_hh replaced: what
        `torch.func.functional_call(self.rnn, {"weight_hh_l0": w_hh}, ...)` computes, without
        swapping the module's parameters (faster: results/perf/README.md)."""
        rnn = self.rnn
        state = self.initial_state(x.shape[1], x) if state is None else state
        hx = tuple(s.unsqueeze(0) for s in state)
        weights = [rnn.weight_ih_l0, w_hh, rnn.bias_ih_l0, rnn.bias_hh_l0]
        args = (weights, True, 1, 0.0, self.training, False, False)  # bias, 1 layer, no dropout
        if self.cell == "lstm":
            out, h, c = torch.lstm(x, hx, *args)
            return out, (h.squeeze(0), c.squeeze(0))
        out, h = FUSED_OPS[self.cell](x, hx[0], *args)
        return out, (h.squeeze(0),)

    def _custom(
        self,
        x: Tensor,
        state: State,
        w_hh: Tensor,
        regularizers: Sequence[Regularizer],
        index: int,
        lengths: Tensor | None = None,
    ) -> tuple[Tensor, State]:
        steps, batch, _ = x.shape
        compiled = compiles(self.step_mode)
        plan = StepPlan(self.cell, steps, batch, self.hidden_size, like=x, compiled=compiled)
        for reg in regularizers:
            reg.plan_steps(plan, index)
        valid = _valid_steps(lengths, x) if _batch_statistics(plan) else None
        plan.valid = None if valid is None else list(valid.unbind(0))
        projection, b_hh = self._input_terms(plan)
        mode, chunk = self.step_mode, self.chunk
        walked = walk_custom(self, x, state, projection, w_hh, b_hh, plan, valid, mode, chunk)
        counts = batch if valid is None else valid.sum((1, 2))
        for name, per_step in walked.stats.items():
            _update_running_stats(getattr(plan, name), per_step, counts)
        return walked.outputs, walked.state

    def _input_terms(self, plan: StepPlan) -> tuple[InputProjection, Tensor]:
        """The input projection the walk computes (W_ih x with b_ih, and the plan's input norm
        over all steps, if any) and the bias left for the step: both biases when a norm over
        the summed input comes first; b_hh alone when b_ih joins the shift of a per-step input
        norm (set in the plan here) or the projection."""
        rnn = self.rnn
        weight, bias, b_hh = rnn.weight_ih_l0, rnn.bias_ih_l0, rnn.bias_hh_l0
        if plan.sum_norm is not None:
            return InputProjection(weight, None), rnn.bias_ih_l0 + rnn.bias_hh_l0
        if (norm := plan.step_input_norm) is not None:
            shift = bias if norm.bias is None else norm.bias + bias
            plan.step_input_norm = replace(norm, bias=shift)
            return InputProjection(weight, None), b_hh
        return InputProjection(weight, bias, plan.input_norm), b_hh

    @property
    def gates(self) -> int:
        return GATES[self.cell]


def _batch_statistics(plan: StepPlan) -> bool:
    """Whether the plan's steps (or its input norm) may take batch statistics."""
    norms = (getattr(plan, name) for name in STEP_NORMS)
    per_step = any(n is not None and n.kind == "batch" and n.stats is None for n in norms)
    return per_step or plan.input_norm is not None


# Batch statistics need this many sequences at a step; at steps where fewer still run, the
# whole batch counts (see `_valid_steps`).
MIN_RUNNING = 8


def _valid_steps(lengths: Tensor | None, x: Tensor) -> Tensor | None:
    """(T, B, 1) bool: set where step t of sequence b is within its length, and for every
    row at steps where fewer than MIN_RUNNING sequences run. A padded batch often ends with
    a few long sequences, and the statistics of a few rows make a normalized recurrence
    unstable: one row's normalize it to the shift alone (erasing the term and its gradient);
    those of 3 or 4 make it chaotic, so that a tiny change of one sequence grows a
    thousandfold within 40 steps, and recurrent BN diverged on SST-2 at steps where 2 of 125
    sentences ran (tests/test_padded_batches.py). Those steps take the whole batch's
    statistics, the padded rows included (they keep stepping over the padding). None without
    lengths."""
    if lengths is None:
        return None
    valid = valid_steps(lengths, x.shape[0], x.device)
    return valid | (valid.sum(1, keepdim=True) < MIN_RUNNING)


def _update_running_stats(norm: Norm | None, stats: list[Stats], batch: int | Tensor) -> None:
    """Hand the batch statistics a batch norm used at each step to its running averages."""
    if norm is None or norm.update is None or not stats:
        return
    means, variances = zip(*stats, strict=True)
    norm.update(torch.stack(means).detach(), torch.stack(variances).detach(), batch)
