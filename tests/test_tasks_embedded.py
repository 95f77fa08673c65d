"""The embedded tasks: shapes, split sizes, determinism and the task definitions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from helpers import task_instance
from regbench.errors import ConfigError
from regbench.plan.config import resolve
from regbench.tasks import get_task
from regbench.tasks.adding import TRIVIAL_MSE
from regbench.tasks.copy_memory import memoryless_baseline


def make(name: str, data_seed: int = 0, **params):
    task = task_instance(name, data_seed=data_seed, batch_size=16, **params)
    task.setup()
    return task


def tensors(task, split):
    return task.splits[split].tensors


def test_seq_digits_shapes_and_split_sizes():
    task = make("seq_digits")
    assert task.split_sizes() == {"train": 1078, "val": 359, "test": 360}
    x, y = tensors(task, "train")["x"], tensors(task, "train")["y"]
    assert x.shape == (1078, 64, 1) and x.dtype == torch.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert y.dtype == torch.int64 and set(y.tolist()) == set(range(10))


def test_seq_digits_split_is_stratified_disjoint_and_fixed_across_data_seeds():
    a, b = make("seq_digits", data_seed=0), make("seq_digits", data_seed=5)
    for split in ("train", "val", "test"):
        assert torch.equal(tensors(a, split)["x"], tensors(b, split)["x"])
    counts = {
        s: torch.bincount(tensors(a, s)["y"], minlength=10).float() for s in ("train", "test")
    }
    share = counts["test"] / counts["train"]
    assert share.min() > 0.28 and share.max() < 0.38  # 360/1078 ≈ 0.33 in every class
    rows = {s: {tuple(r.flatten().tolist()) for r in tensors(a, s)["x"]} for s in ("val", "test")}
    assert len(rows["val"] & rows["test"]) <= 2  # the digits set holds a few duplicate images


def test_seq_digits_split_seed_changes_the_split():
    a, b = make("seq_digits", split_seed=0), make("seq_digits", split_seed=1)
    assert not torch.equal(tensors(a, "test")["x"], tensors(b, "test")["x"])


def test_adding_data_definition():
    task = make("adding", T=30, n_train=200, n_val=20, n_test=50)
    assert task.split_sizes() == {"train": 200, "val": 20, "test": 50}
    x, y = tensors(task, "train")["x"], tensors(task, "train")["y"]
    assert x.shape == (200, 30, 2) and y.shape == (200,)
    markers = x[..., 1]
    assert torch.equal(markers.sum(1), torch.full((200,), 2.0))
    assert torch.allclose((x[..., 0] * markers).sum(1), y)
    assert x[..., 0].min() >= 0.0 and x[..., 0].max() < 1.0


def test_adding_trivial_mse_is_the_variance_of_the_sum():
    task = make("adding", T=10, n_train=20_000, n_val=1, n_test=1)
    y = tensors(task, "train")["y"]
    assert pytest.approx(1 / 6) == TRIVIAL_MSE
    assert F.mse_loss(torch.ones_like(y), y).item() == pytest.approx(TRIVIAL_MSE, abs=0.01)


def test_copy_memory_data_definition():
    task = make("copy_memory", T=15, n_train=40, n_val=5, n_test=5)
    x, y = tensors(task, "train")["x"][..., 0], tensors(task, "train")["y"]
    assert x.shape == (40, 35) and y.shape == (40, 35)
    digits = x[:, :10]
    assert digits.min() >= 1 and digits.max() <= 8
    assert torch.all(x[:, 10:24] == 0) and torch.all(x[:, 24:] == 9)  # T−1 blanks, 11 nines
    assert torch.all(y[:, :25] == 0) and torch.equal(y[:, 25:], digits.long())


def test_copy_memory_memoryless_baseline_is_the_cross_entropy_of_a_memoryless_model():
    steps = 40
    task = make("copy_memory", T=steps, n_train=10, n_val=1, n_test=1)
    y = tensors(task, "train")["y"]
    logits = torch.full((*y.shape, 10), -1e9)
    logits[:, : steps + 10, 0] = 0.0  # certain 0 before recall
    logits[:, steps + 10 :, 1:9] = 0.0  # uniform over the digits 1–8 at recall
    ce = F.cross_entropy(logits.flatten(0, 1), y.flatten()).item()
    assert ce == pytest.approx(memoryless_baseline(steps), rel=1e-6)
    assert memoryless_baseline(1000) == pytest.approx(10 * math.log(8) / 1020)


@pytest.mark.parametrize("name", ["adding", "copy_memory"])
def test_generated_data_is_determined_by_the_data_seed(name):
    sizes = {"T": 8, "n_train": 30, "n_val": 10, "n_test": 10}
    a, b, c = make(name, 3, **sizes), make(name, 3, **sizes), make(name, 4, **sizes)
    for split in ("train", "val", "test"):
        assert torch.equal(tensors(a, split)["x"], tensors(b, split)["x"])
        assert not torch.equal(tensors(a, split)["x"], tensors(c, split)["x"])


def test_changing_the_training_size_leaves_the_test_set_unchanged():
    a = make("adding", 0, T=8, n_train=30, n_val=10, n_test=10)
    b = make("adding", 0, T=8, n_train=60, n_val=10, n_test=10)
    assert torch.equal(tensors(a, "test")["x"], tensors(b, "test")["x"])


def test_training_batches_are_shuffled_by_the_order_seed_only():
    def first_batch(order_seed):
        cls = get_task("adding")
        task = cls(
            {"T": 5, "n_train": 64, "n_val": 8, "n_test": 8},
            data_seed=0,
            order_seed=order_seed,
            batch_size=8,
            eval_batch_size=8,
        )
        task.setup()
        return next(iter(task.train_dataloader()))["y"]

    assert torch.equal(first_batch(1), first_batch(1))
    assert not torch.equal(first_batch(1), first_batch(2))


@pytest.mark.parametrize(
    ("task", "key", "value", "fragment"),
    [
        ("adding", "task.params.T", 1, "T must be at least 2"),
        ("copy_memory", "task.params.n_test", 0, "split sizes"),
        ("seq_digits", "task.params.val_fraction", 0.9, "val_fraction"),
    ],
)
def test_bad_task_parameters_are_config_errors(task, key, value, fragment):
    with pytest.raises(ConfigError, match=fragment):
        resolve(task, "none", "lstm", 0, {key: value})


def test_protocols_declare_metric_direction_and_reference():
    for name, metric, direction in (
        ("seq_digits", "accuracy", "max"),
        ("adding", "mse", "min"),
        ("copy_memory", "cross_entropy", "min"),
    ):
        p = get_task(name).protocol
        assert (p.metric, p.direction) == (metric, direction)
        assert p.version >= 1 and p.reference and p.splits
