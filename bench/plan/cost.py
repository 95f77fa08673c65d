"""What a grid costs before it runs, on a named device, from measured throughput.

A job costs epochs × training batches per epoch × seconds per training step, plus (validation
batches per epoch × epochs + test batches) × seconds per evaluation batch, plus the one-off
compile seconds of its step mode. The seconds come from a calibration file,
results/perf/throughput/<device>.json, which `python -m regbench.perf.calibrate` writes: one
row per distinct job shape of the grids it was given (task and its parameters, cell, variant,
model sizes, batch sizes, optimizer, epochs, execution settings; not seeds or rates), timed
warm in Lightning's loop. A job without a row of its own takes the row of the same shape at
the nearest size (tokens per batch), scaled by tokens, and says so. Batches per epoch come
from the task's declared split sizes (n_train/n_val/n_test parameters, a language model's
token counts, or the numbers of its protocol's `splits` line), never from loading its data.
Jobs already done cost nothing.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regbench.errors import ConfigError
from regbench.plan.jobs import Job
from regbench.tasks import get_task
from regbench.tasks.base import SPLITS, InputSpec
from regbench.tasks.language import LanguageModelTask

THROUGHPUT = Path("results") / "perf" / "throughput"
CALIBRATE = "python -m regbench.perf.calibrate"
DEFAULT_DEVICES = ("cpu", "cuda-nvidia-h200")
SCHEMA = 1
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


def _shape_id(key: Mapping[str, Any]) -> str:
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


@dataclass
class Calibration:
    """A calibration file: the machine, and its rows by key."""

    path: Path
    data: dict[str, Any]
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def source(self) -> str:
        """'<file> measured on <machine> on <dates> (commit …)'."""
        m, rows = self.data["machine"], self.rows.values()
        name = m.get("gpu") or f"{m['cpu']} ({m['cpu_count']} cores)"
        days = sorted({r["measured"][:10] for r in rows})
        commits = ", ".join(sorted({r["commit"] for r in rows}))
        when = days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}"
        return f"{self.path} measured on {name}, torch {m['torch']} on {when} (commit {commits})"

    def find(self, key: Mapping[str, Any], size: Shape | None) -> tuple[dict | None, float, float]:
        """The row of `key`, scales 1; else the row of its shape at the nearest tokens per
        training batch, and the token ratios (training, evaluation) to scale it by."""
        row = self.rows.get(key_id(key))
        if row is not None:
            return row, 1.0, 1.0
        near = [r for r in self.rows.values() if _shape_id(r["key"]) == _shape_id(key)]
        if not near or size is None:
            return None, 0.0, 0.0
        ratio = lambda r: size.rows * size.steps / r["tokens_per_step"]  # noqa: E731
        row = min(near, key=lambda r: abs(math.log(ratio(r))))
        return row, ratio(row), size.eval_rows * size.steps / row["eval_tokens_per_batch"]


def load_calibration(device: str, folder: Path | str = THROUGHPUT) -> Calibration | None:
    """The device's calibration file, its measured rows by key; None if there is none."""
    path = Path(folder) / f"{device}.json"
    if not path.is_file():
        return None

    try:
        data = json.loads(path.read_text())
        rows = {key_id(r["key"]): r for r in data["rows"] if "train_step_s" in r}
        if data["schema"] != SCHEMA or not {"cpu", "cpu_count", "torch"} <= set(data["machine"]):
            raise ValueError(f"schema {data['schema']!r} or machine {data['machine']!r}")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(
            f"{path}: not a calibration file ({type(err).__name__}: {err}); delete it and "
            f"run {CALIBRATE} again."
        ) from None
    return Calibration(path, data, rows)


@dataclass(frozen=True)
class JobCost:
    """One job's estimated seconds by part (all 0 when done); `why` an unknown one's reason."""

    job: Job
    done: bool = False
    train_s: float = 0.0
    val_s: float = 0.0
    test_s: float = 0.0
    compile_s: float = 0.0
    why: str = ""
    scaled: bool = False
    approximate: bool = False

    @property
    def seconds(self) -> float:
        return self.train_s + self.val_s + self.test_s + self.compile_s


def job_cost(job: Job, calibration: Calibration) -> JobCost:
    """The job's seconds on the calibration's device (none measured: `why` says so)."""
    config, counts = job.config, batches(job.config)
    if counts is None:
        return JobCost(job, why="split sizes unknown (none declared)")
    row, scale, eval_scale = calibration.find(row_key(config), shape(config))
    if row is None:
        return JobCost(job, why="not calibrated")
    epochs, per_eval = config["train"]["max_epochs"], row["eval_batch_s"] * eval_scale
    return JobCost(
        job,
        train_s=epochs * counts.train * row["train_step_s"] * scale,
        val_s=epochs * counts.val * per_eval,
        test_s=counts.test * per_eval,
        compile_s=row.get("compile_s", 0.0),
        scaled=key_id(row["key"]) != key_id(row_key(config)),
        approximate=counts.approximate,
    )


@dataclass
class Estimate:
    """The costs of a grid's jobs on one device."""

    device: str
    calibration: Calibration | None
    costs: list[JobCost]

    @property
    def seconds(self) -> float:
        return sum(c.seconds for c in self.costs)

    @property
    def done(self) -> int:
        return sum(c.done for c in self.costs)

    @property
    def unknown(self) -> list[JobCost]:
        return [c for c in self.costs if c.why]

    def per_variant(self) -> dict[str, tuple[float, int, int]]:
        """Per variant: seconds left, runs left, runs left without an estimate."""
        out: dict[str, tuple[float, int, int]] = {}
        for c in self.costs:
            seconds, runs, unknown = out.get(c.job.config["variant"], (0.0, 0, 0))
            out[c.job.config["variant"]] = (seconds + c.seconds, runs + (not c.done),
                                            unknown + bool(c.why))  # fmt: skip
        return out

    @property
    def eval_share(self) -> float:
        """Evaluation seconds as a fraction of the rest (training and compile)."""
        evaluation = sum(c.val_s + c.test_s for c in self.costs)
        return evaluation / max(self.seconds - evaluation, 1e-12)


def estimate(
    jobs: Sequence[Job], device: str, done: Collection[str] = (), folder: Path | str = THROUGHPUT
) -> Estimate:
    """Each job's cost on `device` (a calibration file's name: cpu, cuda-nvidia-h200, …);
    the jobs whose ids are in `done` cost 0."""
    calibration = load_calibration(device, folder)
    costs = [
        JobCost(job, done=True) if job.id in done
        else JobCost(job, why="no calibration") if calibration is None
        else job_cost(job, calibration)
        for job in jobs
    ]  # fmt: skip
    return Estimate(device, calibration, costs)


def describe(
    jobs: Sequence[Job],
    done: Collection[str] = (),
    devices: Sequence[str] | None = None,
    workers: int = 1,
    grid: str = "<grid>",
    folder: Path | str = THROUGHPUT,
) -> list[str]:
    """Lines for `regbench status`: per device (DEFAULT_DEVICES and every calibrated one),
    the cost left, per variant, the runs without an estimate, and how it was made."""
    found = sorted(p.stem for p in Path(folder).glob("*.json"))
    devices = devices or [*DEFAULT_DEVICES, *(d for d in found if d not in DEFAULT_DEVICES)]
    return [ln for d in devices for ln in _lines(estimate(jobs, d, done, folder), workers, grid)]


def _lines(e: Estimate, workers: int, grid: str) -> list[str]:
    head, left = f"cost on {e.device}:", len(e.costs) - e.done
    kind = "cuda" if e.device.startswith("cuda") else "cpu"
    hint = f"run {CALIBRATE} --device {kind} --grids {grid} on it"
    if e.calibration is None:
        return [f"{head} no calibration for {e.device}: {hint}"]
    if not left:
        return [f"{head} all {len(e.costs)} runs done"]
    missing = _missing(e.unknown, hint)
    if len(e.unknown) == left:
        return [f"{head} {left} of {len(e.costs)} runs left, none with an estimate", missing]
    wall = f" (≈ {_time(e.seconds / workers)} with {workers} workers)" if workers > 1 else ""
    known = f" for {left - len(e.unknown)} of them" if e.unknown else ""
    parts = [
        f"{v} done" if not runs else f"{v} unknown ({runs} left)" if n == runs
        else f"{v} {_time(s)} ({runs} left{f', {n} unknown' if n else ''})"
        for v, (s, runs, n) in e.per_variant().items()
    ]  # fmt: skip
    return [
        f"{head} {left} of {len(e.costs)} runs left; ≈ {_time(e.seconds)} of "
        f"{'CPU' if kind == 'cpu' else 'GPU'} time{known}, one run at a time{wall}; "
        f"evaluation adds {100 * e.eval_share:.0f} %",
        "  per variant: " + ", ".join(parts),
        *([missing] if e.unknown else []),
        "  how: " + _how(e, workers),
    ]


def _missing(costs: list[JobCost], hint: str) -> str:
    """The runs without an estimate: why, and which task · variant · cell rows."""
    rows = sorted({" · ".join(c.job.label.split(" · ")[:3]) for c in costs})
    why = ", ".join(sorted({c.why for c in costs}))
    fix = f"; {hint}" if "not calibrated" in why else ""
    more = f" and {len(rows) - 4} more" if len(rows) > 4 else ""
    return f"  {len(costs)} runs without an estimate ({why}{fix}): {', '.join(rows[:4])}{more}"


def _how(e: Estimate, workers: int) -> str:
    scaled = sum(x.scaled for x in e.costs)
    rough = sum(x.approximate for x in e.costs)
    return (
        f"from {e.calibration.source}: runs × epochs × training batches per epoch (from the "
        "tasks' declared split sizes) × seconds per training step (median of warm "
        "forward+backward+optimizer steps in Lightning's loop at the grid's sizes), plus "
        "validation batches each epoch and test batches once × measured seconds per "
        "evaluation batch, plus compile seconds once per run"
        + (f"; {scaled} runs from another size, scaled by tokens per batch" if scaled else "")
        + (f"; {rough} runs from approximate ('about') split sizes" if rough else "")
        + ("; workers assumed not to slow each other" if workers > 1 else "")
    )


def _time(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"
