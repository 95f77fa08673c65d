"""`python -m regbench.perf.calibrate`: seconds per training step and per evaluation batch of
every distinct job shape of some grids, on this machine's CPU or a GPU, for the cost estimate
of `regbench status` (bench/plan/cost.py).

A row is one calibration key (sizes.row_key: task and parameters, cell, variant, model sizes,
batch sizes, optimizer, epochs, execution; seeds and rates left out), measured with the model
a job of that key builds (SequenceModel from its resolved config, its step mode as the run
would pick it on this device, its CPU threads) in Lightning's training loop: after `--warmup`
steps, up to `--steps` more, each timed from the end of one batch to the end of the next
(forward, backward, clipping, optimizer step and the loop's own work; synchronized on CUDA),
and the median kept; the warm-up steps' excess over it is the one-off compile time. Then
`--eval-steps` evaluation batches at the evaluation batch size, timed the same way after one
warm-up batch. The batches are the task's first few (generated tasks, and external ones with
`--data-dir`), else synthetic ones of the task's declared input shape (sizes.shape): random
tokens or features and targets, so data-free (a GPU machine without the data). A row stops
timing at `--row-seconds` and the whole run at `--seconds`; rows it did not reach are left
out (the estimate calls them not calibrated). Rows are written to
results/perf/throughput/<device>.json after each one, merged with the file's rows measured on
the same machine. `--check` compares the estimate with the finished runs of the grids instead.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from itertools import islice
from pathlib import Path
from typing import Any

import lightning as L
import torch

from regbench.errors import ConfigError
from regbench.models import SequenceModel
from regbench.perf.estimate_check import check_grids
from regbench.perf.table import device_slug
from regbench.plan import cost, sizes
from regbench.plan.grid import expand, load_grid
from regbench.plan.jobs import Job
from regbench.run.provenance import _cpu_model, code_version, now
from regbench.run.rundir import write_json_atomic
from regbench.run.runtime import COMPILE_WORK, cpu_threads, execution, training_work
from regbench.run.train import build_task, quiet_lightning
from regbench.tasks import get_task
from regbench.tasks.base import loader
from regbench.tasks.sources import data_dir

DISTINCT_BATCHES = 4  # real batches taken from a task, cycled


@dataclass
class Inputs:
    """What a row trains and evaluates on, and how it steps."""

    spec: Any
    train: list[dict[str, Any]]
    eval: list[dict[str, Any]]
    step_mode: str
    source: str


def planned(grids: Sequence[str], variants: Sequence[str] = ()) -> list[tuple[dict, Job, list]]:
    """(key, first job, grid names) per distinct calibration key of the grids' jobs."""
    rows: dict[str, tuple[dict, Job, list]] = {}
    for name in grids:
        grid = load_grid(name)
        for job in expand(grid):
            if variants and job.config["variant"] not in variants:
                continue
            key = sizes.row_key(job.config)
            entry = rows.setdefault(sizes.key_id(key), (key, job, []))
            if grid.name not in entry[2]:
                entry[2].append(grid.name)
    return list(rows.values())


def inputs(config: dict[str, Any], device: torch.device, data: str | None) -> Inputs:
    """The task's first batches where it can be built without a download (a generated task,
    shrunk to a few batches; an external one from local data), else synthetic batches."""
    cls, params = get_task(config["task"]["name"]), config["task"]["params"]
    full = None
    if cls.external_data and data_dir(data) is not None:
        task = full = build_task(config, data)
    elif not cls.external_data:
        train = config["train"]
        most = DISTINCT_BATCHES * max(train["batch_size"], train["eval_batch_size"])
        small = {
            k: min(v, most) if k in ("n_train", "n_val", "n_test") else v for k, v in params.items()
        }
        task = build_task({**config, "task": {**config["task"], "params": small}})
    else:
        return _synthetic(config, device)
    task.setup("fit")
    first = lambda loader: list(islice(loader, DISTINCT_BATCHES))  # noqa: E731
    mode = _step_mode(config, device, full)
    what = f"the task's first {DISTINCT_BATCHES} batches"
    return Inputs(
        task.input_spec(), first(task.train_dataloader()), first(task.val_dataloader()), mode, what
    )


def _synthetic(config: dict[str, Any], device: torch.device) -> Inputs:

    size = sizes.shape(config)
    name = config["task"]["name"]
    if size is None:
        raise ConfigError(f"{name}: its input shape needs its data; pass --data-dir.")
    kind = get_task(name).protocol.kind
    generator = torch.Generator().manual_seed(0)
    make = lambda rows: _random_batch(size, kind, rows, generator)  # noqa: E731
    return Inputs(
        size.spec,
        [make(size.rows) for _ in range(DISTINCT_BATCHES)],
        [make(size.eval_rows) for _ in range(DISTINCT_BATCHES)],
        _step_mode(config, device, None),
        "synthetic batches of the task's declared input shape",
    )


def _random_batch(size: sizes.Shape, kind: str, rows: int, g: torch.Generator) -> dict:
    spec, steps = size.spec, size.steps
    if spec.tokens:
        x = torch.randint(spec.vocab_size, (rows, steps), generator=g)
    else:
        x = torch.randn(rows, steps, spec.features, generator=g)
    if kind == "regress_last":
        y = torch.randn(rows, generator=g)
    else:
        each = kind == "classify_each"
        y = torch.randint(spec.num_outputs, (rows, steps) if each else (rows,), generator=g)
    return {"x": x, "y": y, **({"stateful": True} if size.stateful else {})}


def _step_mode(config: dict[str, Any], device: torch.device, task: Any) -> str:
    """The step mode a run of `config` picks on `device` (run.runtime.choose_step_mode),
    its training work counted from the full task if built, else from declared sizes."""
    mode = execution(config)["step_mode"]
    if mode != "auto":
        return mode
    if device.type == "cuda":
        return "graph"
    if task is not None:
        work = training_work(config, task)
    else:
        counts, size = sizes.batches(config), sizes.shape(config)
        work = size.steps * counts.train * config["train"]["max_epochs"] if counts and size else 0
    return "compile" if work >= COMPILE_WORK else "eager"


class Clock(L.Callback):
    """Seconds from one batch's end to the next's (the first from its start), training and
    evaluation apart; training stops once `cap` seconds have passed after the warm-up."""

    def __init__(self, warmup: int, cap: float, device: torch.device) -> None:
        self.warmup, self.cap, self.device = warmup, cap, device
        self.times: dict[str, list[float]] = {"train": [], "eval": []}
        self.mark: dict[str, float] = {}

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _end(self, part: str) -> None:
        t = self._now()
        self.times[part].append(t - self.mark[part])
        self.mark[part] = t

    def on_train_batch_start(self, *args: Any) -> None:
        self.mark.setdefault("train", self._now())
        self.mark.setdefault("started", self.mark["train"])

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self._end("train")
        late = self.mark["train"] - self.mark["started"] > self.cap
        if len(self.times["train"]) > self.warmup and late:
            trainer.should_stop = True

    def on_validation_batch_start(self, *args: Any) -> None:
        self.mark.setdefault("eval", self._now())

    def on_validation_batch_end(self, *args: Any) -> None:
        self._end("eval")


def _cycled(batches: list[dict], n: int) -> Any:

    return loader([batches[i % len(batches)] for i in range(n)], None)


def measure(config: dict, device: torch.device, args: argparse.Namespace, cap: float) -> dict:
    """One row: the model of `config` timed as the module docstring says."""
    quiet_lightning()
    with cpu_threads(config), tempfile.TemporaryDirectory() as root, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = inputs(config, device, args.data_dir)
        torch.manual_seed(config["seeds"]["init"])
        model = SequenceModel(config, data.spec, get_task(config["task"]["name"]).protocol)
        model.net.set_step_mode(data.step_mode)
        custom = any(r.custom_cell for r in model.net.regularizers)  # else the fused kernel
        clock = Clock(args.warmup, cap, device)
        clip = config["train"]["clip"]
        trainer = L.Trainer(
            accelerator="gpu" if device.type == "cuda" else "cpu",
            devices=[device.index or 0] if device.type == "cuda" else 1,
            max_steps=args.warmup + args.steps,
            limit_val_batches=args.eval_steps + 1,
            gradient_clip_val=clip if clip > 0 else None,
            deterministic=True if device.type == "cpu" else "warn",
            callbacks=[clock],
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            default_root_dir=root,
        )
        trainer.fit(model, train_dataloaders=_cycled(data.train, args.warmup + args.steps))
        trainer.validate(model, dataloaders=_cycled(data.eval, args.eval_steps + 1), verbose=False)
    return _row(config, data, clock, custom, code_version())


def _row(config: dict, data: Inputs, clock: Clock, custom: bool, code: dict) -> dict:
    train, evaluation = clock.times["train"], clock.times["eval"]
    step = statistics.median(train[clock.warmup :] or train[-1:])
    compiled = custom and data.step_mode in ("compile", "graph")
    excess = sum(max(t - step, 0.0) for t in train[: clock.warmup]) if compiled else 0.0
    tokens = lambda batches: statistics.mean(b["x"].shape[0] * b["x"].shape[1] for b in batches)  # noqa: E731
    return {
        "key": sizes.row_key(config),
        "step_mode": data.step_mode if custom else "fused kernel",
        "inputs": data.source,
        "tokens_per_step": tokens(data.train),
        "eval_tokens_per_batch": tokens(data.eval),
        "train_step_s": step,
        "train_steps_timed": max(len(train) - clock.warmup, 1),
        "warmup_s": train[: clock.warmup],
        "compile_s": excess,
        "eval_batch_s": statistics.median(evaluation[1:] or evaluation),
        "eval_batches_timed": max(len(evaluation) - 1, 1),
        "measured": now(),
        "commit": (code["commit"] or os.environ.get("REGBENCH_COMMIT") or "unknown")[:12]
        + ("+dirty" if code["dirty"] else ""),
    }


def machine(device: torch.device) -> dict[str, Any]:
    """The machine a calibration describes (no host name)."""
    cuda = device.type == "cuda"
    return {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(device) if cuda else None,
        "cuda": torch.version.cuda if cuda else None,
        "torch": torch.__version__,
    }


def write(path: Path, description: dict, rows: list[dict], command: str) -> None:
    """The calibration file: `rows`, then the rows of the file there measured on the same
    machine under other keys."""
    kept = cost.load_calibration(path.stem, path.parent) if path.is_file() else None
    if kept is not None and kept.data["machine"] == description:
        new = {sizes.key_id(r["key"]) for r in rows}
        rows = rows + [r for k, r in kept.rows.items() if k not in new]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        path,
        {
            "schema": cost.SCHEMA,
            "device": path.stem,
            "machine": description,
            "date": date.today().isoformat(),
            "command": command,
            "method": __doc__.split("\n\n")[1].replace("\n", " "),
            "rows": rows,
        },
    )


def calibrate(args: argparse.Namespace, command: str) -> tuple[Path, int]:
    """Measure the planned rows within the time budget, writing the file after each; the
    file and how many rows were measured."""
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {args.device}: no GPU is visible here.")
    path = Path(args.out) / f"{device_slug(device)}.json"
    deadline = time.perf_counter() + args.seconds
    plan = planned(args.grids.split(","), [v for v in args.variants.split(",") if v])
    rows: list[dict] = []
    for n, (key, job, grids) in enumerate(plan, 1):
        left = deadline - time.perf_counter()
        what = f"[{n}/{len(plan)}] {key['task']} · {key['variant']} · {key['cell']}"
        if left <= 0:
            print(f"{what}: not measured (--seconds {args.seconds:g} spent)", flush=True)
            continue
        try:
            row = measure(dict(job.config), device, args, min(args.row_seconds, left))
        except Exception as err:  # one row's failure leaves the others
            print(f"{what}: failed: {type(err).__name__}: {err}", flush=True)
            continue
        rows.append({**row, "grids": grids})
        write(path, machine(device), rows, command)
        print(
            f"{what}: {row['train_step_s'] * 1e3:.1f} ms/step, "
            f"{row['eval_batch_s'] * 1e3:.1f} ms/eval batch ({row['step_mode']})",
            flush=True,
        )
    return path, len(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="regbench-calibrate", description=__doc__.splitlines()[0])
    ap.add_argument("--grids", required=True, help="comma-separated grid names or files")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--seconds", type=float, default=600.0, help="time budget of the whole run")
    ap.add_argument("--row-seconds", type=float, default=30.0, help="timing cap per row")
    ap.add_argument("--steps", type=int, default=20, help="timed training steps per row (most)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed first training steps")
    ap.add_argument("--eval-steps", type=int, default=5, help="timed evaluation batches")
    ap.add_argument("--variants", default="", help="comma-separated subset (default: all)")
    ap.add_argument("--data-dir", default=None, help="local data (else $REGBENCH_DATA)")
    ap.add_argument("--out", default=str(cost.THROUGHPUT))
    ap.add_argument("--check", action="store_true", help="compare with finished runs instead")
    ap.add_argument("--runs-dir", default="runs", help="for --check: the run directories")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    if args.warmup < 1 or args.steps < 1 or args.eval_steps < 1:
        raise SystemExit("regbench-calibrate: --warmup, --steps and --eval-steps must be ≥ 1")
    command = " ".join(["python -m regbench.perf.calibrate", *(argv or sys.argv[1:])])
    try:
        if args.check:
            return check_grids(args)
        path, measured = calibrate(args, command)
    except ConfigError as err:
        raise SystemExit(f"regbench-calibrate: {err}") from None
    print(f"wrote {measured} rows to {path}" if measured else "measured no row; wrote nothing")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
