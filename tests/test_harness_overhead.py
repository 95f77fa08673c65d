"""The harness's per-step savings (issue 19) change no number: `train/loss`, summed in the
module and logged once an epoch, equals Lightning's per-step `self.log` mean bit for bit, on
fixed-length epochs, epochs cut by `train.limit_batches` and variable-length BPTT epochs of
unknown length; the divergence guard stops on the same losses with the same message; a CPU
batch is not copied; the profiler is one no-op context; Lightning's hook name is a plain
attribute."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest
import torch

import fixtures
from regbench.models import module
from regbench.plan.config import resolve
from regbench.run import train as train_module
from regbench.run.callbacks import Diverged, DivergenceGuard
from regbench.run.rundir import RunDir
from regbench.run.train import Runtime, train
from regbench.run.trainer import Unprofiled
from regbench.tasks import get_task, ptb
from regbench.tasks.base import InputSpec

QUIET = Runtime(wandb="disabled")


class PerStepLog(module.SequenceModel):
    """SequenceModel that also logs its loss the way it did before, at every step, under
    `lightning/loss`: EpochLog writes both keys into each metrics.jsonl row."""

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        size = len(batch["y"])
        self.log("lightning/loss", loss, on_step=False, on_epoch=True, batch_size=size)
        return loss


def both_losses(config: dict, tmp_path, monkeypatch, runtime: Runtime = QUIET) -> list[tuple]:
    monkeypatch.setattr(train_module, "SequenceModel", PerStepLog)
    train(config, tmp_path / "run", runtime)
    rows = RunDir(tmp_path / "run").epochs()
    assert rows, "no epoch was written"
    return [(r["train/loss"], r["lightning/loss"]) for r in rows]


@pytest.mark.parametrize(
    ("task", "extra"),
    [("adding", {}), ("seq_digits", {"train.limit_batches": 3}), ("copy_memory", {})],
)
def test_the_epoch_loss_is_lightnings_per_step_mean_bit_for_bit(
    tmp_path, monkeypatch, tiny, task, extra
):
    config = resolve(task, "zoneout", "lstm", 0, {**tiny[task], **extra})
    for ours, lightning in both_losses(config, tmp_path, monkeypatch):
        assert math.isfinite(ours) and ours.hex() == lightning.hex()


def test_the_epoch_loss_of_variable_bptt_epochs_of_unknown_length(tmp_path, monkeypatch):
    """VariableWindows has no length: the last batch is known from Lightning's prefetch."""
    monkeypatch.setattr(ptb, "WORD_MD5", fixtures.write_ptb(tmp_path))
    monkeypatch.setattr(ptb.PtbWord, "expected_tokens", lambda self: None)
    config = resolve("ptb_word", "none", "lstm", 0, fixtures.TINY_VARIABLE_PTB)
    runtime = Runtime(data_dir=str(tmp_path), wandb="disabled")
    losses = both_losses(config, tmp_path, monkeypatch, runtime)
    assert len(losses) == 2
    for ours, lightning in losses:
        assert math.isfinite(ours) and ours.hex() == lightning.hex()


def test_the_epoch_loss_sums_in_float32_from_zero_and_divides_by_the_count():
    loss = module.EpochLoss()
    assert loss.mean() is None
    values = [(torch.tensor(0.1), 32), (torch.tensor(0.7), 32), (torch.tensor(0.3), 8)]
    for value, size in values:
        loss.add(value, size)
    total = torch.tensor(0.0)
    for value, size in values:
        total = total + value * size
    mean = loss.mean()
    assert mean is not None and mean.dtype == torch.float32
    assert mean.item() == (total / torch.tensor(72)).item()
    loss.reset()
    assert loss.mean() is None


def tiny_model() -> module.SequenceModel:
    """An adding-task SequenceModel of 4 units, outside any fit."""
    return module.SequenceModel(
        resolve("adding", "none", "lstm", 0, {"model.hidden_size": 4}),
        InputSpec(num_outputs=1, features=2),
        get_task("adding").protocol,
    )


def test_a_step_outside_a_fit_logs_nothing_and_keeps_no_sum():
    model = tiny_model()
    batch = {"x": torch.zeros(3, 5, 2), "y": torch.zeros(3)}
    assert model.training_step(batch, 0).ndim == 0
    assert model.epoch_loss.mean() is None


def test_a_cpu_batch_is_handed_on_as_it_is():
    model = tiny_model()
    batch = {"x": torch.zeros(3, 5, 2), "y": torch.zeros(3)}
    assert model.transfer_batch_to_device(batch, torch.device("cpu"), 0) is batch


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_the_guard_stops_a_non_finite_loss_naming_the_step(value):
    trainer = SimpleNamespace(global_step=8, current_epoch=2)
    with pytest.raises(Diverged, match=rf"training loss {value} at step 7 \(epoch 2, batch 3\)"):
        DivergenceGuard().on_train_batch_end(trainer, None, {"loss": torch.tensor(value)}, {}, 3)


def test_the_guard_lets_a_finite_loss_and_a_skipped_step_pass():
    trainer = SimpleNamespace(global_step=1, current_epoch=0)
    guard = DivergenceGuard()
    for outputs in ({"loss": torch.tensor(3.0e38)}, torch.tensor(0.5), None):
        assert guard.on_train_batch_end(trainer, None, outputs, {}, 0) is None


def test_the_trainer_profiles_nothing_with_one_reusable_context():
    profiler = Unprofiled()
    with profiler.profile("[Callback]EpochLog.on_train_batch_end") as entered:
        nested = profiler.profile("optimizer_step")
        with nested:  # re-entered while the outer one is open
            pass
    assert entered is None and profiler.profile("a") is profiler.profile("b")


def test_lightnings_hook_name_is_a_plain_attribute_and_submodules_still_register():
    model = tiny_model()
    model._current_fx_name = "training_step"
    model.head = torch.nn.Linear(1, 1)
    assert model._current_fx_name == "training_step" and "head" in model._modules
