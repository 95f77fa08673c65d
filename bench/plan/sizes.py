"""A job's size as a cost estimate needs it, from its config and its task's declarations alone
(never from its data): the key of its calibration row, its input shape (rows, steps, tokens
per batch) and its batches per epoch, from the task's declared split sizes (n_train/n_val/
n_test parameters, a language model's token counts, or its protocol's `splits` line)."""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from regbench.tasks import get_task
from regbench.tasks.base import SPLITS, InputSpec
from regbench.tasks.language import LanguageModelTask

# fields of a calibration key that set a job's size, not its shape (the nearest-size match)
SIZE_FIELDS = ("params", "batch_size", "eval_batch_size", "max_epochs", "limit_batches")
# external tasks' input shapes as their modules state them, for when their data is absent
DECLARED_SHAPES = {
    "smnist": lambda p: (InputSpec(10, features=1), 784),
    "pmnist": lambda p: (InputSpec(10, features=1), 784),
    "imdb": lambda p: (InputSpec(2, vocab_size=p["vocab_size"]), p["max_len"]),
}


def row_key(config: Mapping[str, Any]) -> dict[str, Any]:
    """What sets a job's seconds per step (and its step mode under 'auto'): everything in
    its config but seeds, regularizer rates, learning-rate settings and initialization."""
    model, train = config["model"], config["train"]
    execution = {"threads": 1, "step_mode": "auto", "flush_denormal": False}
    execution |= {k: v for k, v in config.get("execution", {}).items() if k in execution}
    sizes = ("hidden_size", "num_layers", "embedding_size", "embedding", "tie_weights")
    return {
        "task": config["task"]["name"],
        "params": {k: v for k, v in config["task"]["params"].items() if "seed" not in k},
        "cell": model["cell"],
        "variant": config["variant"],
        "model": {k: model.get(k) for k in sizes},
        "batch_size": train["batch_size"],
        "eval_batch_size": train["eval_batch_size"],
        "max_epochs": train["max_epochs"],
        "limit_batches": train.get("limit_batches", 0),
        "optimizer": train["optimizer"],
        "clip": train["clip"] > 0,
        "execution": execution,
    }


def key_id(key: Mapping[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


def shape_id(key: Mapping[str, Any]) -> str:
    return key_id({k: v for k, v in key.items() if k not in SIZE_FIELDS})


@dataclass(frozen=True)
class Shape:
    """A training batch: the input spec, time steps and rows (without loading data)."""

    spec: InputSpec
    steps: int
    rows: int
    eval_rows: int
    stateful: bool  # a language model's windows, the state carried between them


def _is_language_model(cls: type) -> bool:
    return issubclass(cls, LanguageModelTask)


def shape(config: Mapping[str, Any]) -> Shape | None:
    """The job's batch shape: from a small copy of a generated task, a language model's
    declared vocabulary and BPTT length, or DECLARED_SHAPES; None when only the data
    would tell (SST-2's sentence lengths, a plugin's data)."""
    cls, params, train = get_task(config["task"]["name"]), config["task"]["params"], config["train"]
    lm = _is_language_model(cls)
    if not cls.external_data:
        spec, steps = _generated(cls.protocol.name, json.dumps(params, sort_keys=True))[:2]
    elif lm:
        vocab = declared_vocabulary(cls.protocol.splits)
        if vocab is None:
            return None
        spec, steps = InputSpec(vocab, vocab_size=vocab), params["bptt"]
    elif cls.protocol.name in DECLARED_SHAPES:
        spec, steps = DECLARED_SHAPES[cls.protocol.name](params)
    else:
        return None
    return Shape(spec, steps, train["batch_size"], train["eval_batch_size"], lm)


def declared_vocabulary(splits: str) -> int | None:
    """'vocabulary 10,000' or '50 symbols' in a protocol's `splits` line."""
    found = re.search(r"vocabulary ([\d,]+)|([\d,]+) symbols", splits)
    return int((found[1] or found[2]).replace(",", "")) if found else None


@functools.cache
def _generated(name: str, params: str) -> tuple[InputSpec, int, dict[str, int]]:
    """A generated task's input spec, time steps and split sizes: the sizes from its
    n_train/n_val/n_test parameters when it has them (then only a few sequences are
    generated), else from generating it whole."""
    cls, values = get_task(name), json.loads(params)
    counts = {s: values[f"n_{s}"] for s in SPLITS if f"n_{s}" in values}
    small = {**values, **{f"n_{s}": min(n, 4) for s, n in counts.items()}}
    task = cls(small, data_seed=0, order_seed=0, batch_size=1, eval_batch_size=1)
    task.setup()
    sizes = counts if len(counts) == 3 else task.split_sizes()
    return task.input_spec(), int(task.splits["train"].tensors["x"].shape[1]), sizes


@dataclass(frozen=True)
class Batches:
    """Batches a job trains per epoch, validates per epoch and tests once."""

    train: int
    val: int
    test: int
    approximate: bool = False


def batches(config: Mapping[str, Any]) -> Batches | None:
    """The job's batches, from its task's declared split sizes; None if it declares none."""
    cls, params = get_task(config["task"]["name"]), config["task"]["params"]
    sizes, approximate = _split_sizes(cls, params)
    if sizes is None:
        return None
    lm, train = _is_language_model(cls), config["train"]
    rows = (train["batch_size"], train["eval_batch_size"], train["eval_batch_size"])
    limits = (train.get("limit_batches", 0), *[train.get("limit_eval_batches", 0)] * 2)
    counts = []
    for n, r, limit in zip(sizes, rows, limits, strict=True):
        # a language model's stream is cut into r rows and read in windows of bptt
        count = math.ceil((n // r - 1) / params["bptt"]) if lm else math.ceil(n / r)
        counts.append(min(max(count, 1), limit or count))
    return Batches(*counts, approximate)


def _split_sizes(cls: type, params: Mapping[str, Any]) -> tuple[list[int] | None, bool]:
    """Train/val/test items (tokens for a language model), and whether they are
    approximate ('about' in the protocol's `splits` line). A `splits` line gives the sizes
    at the protocol's parameters; with another n_val, a validation split 'carved from
    train' moves images between the two."""
    if not cls.external_data:
        sizes = _generated(cls.protocol.name, json.dumps(params, sort_keys=True))[2]
        return [sizes[s] for s in SPLITS], False
    splits, sizes = cls.protocol.splits, declared_sizes(cls.protocol.splits)
    if _is_language_model(cls):  # its parameters leave its token counts alone
        task = cls(params, data_seed=0, order_seed=0, batch_size=1, eval_batch_size=1)
        tokens = task.expected_tokens()
        return ([tokens[s] for s in SPLITS], False) if tokens else (sizes, "about" in splits)
    default = cls.protocol.params
    changed = {k for k, v in default.items() if "seed" not in k and params.get(k, v) != v}
    if sizes and changed == {"n_val"} and "carved from train" in splits:
        sizes = [sizes[0] + sizes[1] - params["n_val"], params["n_val"], sizes[2]]
    elif changed:
        return None, False
    return sizes, "about" in splits


def declared_sizes(splits: str) -> list[int] | None:
    """The first three numbers of a `splits` line '55,000 / 5,000 / 10,000 images' or
    'about 5.0M / 394k / 443k characters'; None if it has none."""
    parts = splits.split("/")[:3]
    numbers = [re.search(r"(\d[\d,]*(?:\.\d+)?)\s*([kM]?)\b", p) for p in parts]
    if len(numbers) < 3 or not all(numbers):
        return None
    scale = {"": 1, "k": 1_000, "M": 1_000_000}
    return [round(float(m[1].replace(",", "")) * scale[m[2]]) for m in numbers]
