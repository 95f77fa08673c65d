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

import json
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regbench.errors import ConfigError
from regbench.plan.jobs import Job
from regbench.plan.sizes import Shape, batches, key_id, row_key, shape, shape_id

THROUGHPUT = Path("results") / "perf" / "throughput"
CALIBRATE = "python -m regbench.perf.calibrate"
DEFAULT_DEVICES = ("cpu", "cuda-nvidia-h200")
SCHEMA = 1


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
        near = [r for r in self.rows.values() if shape_id(r["key"]) == shape_id(key)]
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
