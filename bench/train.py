"""train(job): one run, from a resolved config to a finished run directory.

Lightning trains; the checkpoint with the best validation metric is selected; the test split
is evaluated once, on that checkpoint. Everything is written to the run directory, the
`done` marker last.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.warnings import PossibleUserWarning
from lightning.pytorch.callbacks import ModelCheckpoint

from regbench import memory
from regbench.callbacks import EpochLog, Throughput
from regbench.models import SequenceModel
from regbench.provenance import now, provenance
from regbench.rundir import RunDir, write_json_atomic
from regbench.tasks import Task, get_task
from regbench.tasks.sources import data_dir


@dataclass(frozen=True)
class Runtime:
    """How a run executes; none of it is part of the job's identity."""

    accelerator: str = "auto"
    devices: int = 1
    threads: int = 0  # CPU threads for torch; 0 keeps torch's default
    progress: bool = False
    step_mode: str = "auto"  # custom cells: auto, eager or compile (models/steps.py)
    data_dir: str | None = None  # local data in the original formats (else $REGBENCH_DATA/hub)
    command: tuple[str, ...] = field(default_factory=tuple)


# Training step-iterations (time steps × batches × epochs) from which compiling the custom
# cells pays off on a CPU: measured here, a chunk compiles in 25–35 s and saves 0.08–0.12 ms
# per step-iteration (results/perf), so 10⁶ step-iterations repay it about three times.
COMPILE_WORK = 1_000_000


def choose_step_mode(requested: str, config: Mapping[str, Any], task: Task, cuda: bool) -> str:
    """'eager' or 'compile' for this run: as requested, or for 'auto' compile on CUDA and on
    CPU for runs long enough to repay the compile."""
    if requested != "auto":
        return requested
    if cuda:
        return "compile"
    work = task.step_iterations_per_epoch() * config["train"]["max_epochs"]
    return "compile" if work >= COMPILE_WORK else "eager"


def quiet_lightning() -> None:
    """Keep Lightning's banner lines and data-loader hints out of benchmark output."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=PossibleUserWarning)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")


def build_task(config: Mapping[str, Any], data: str | None = None) -> Task:
    task_cls = get_task(config["task"]["name"])
    seeds, train_cfg = config["seeds"], config["train"]
    return task_cls(
        config["task"]["params"],
        data_seed=seeds["data"],
        order_seed=seeds["order"],
        batch_size=train_cfg["batch_size"],
        eval_batch_size=train_cfg["eval_batch_size"],
        data_dir=data_dir(data),
    )


def _trainer(
    config: Mapping[str, Any], run: RunDir, runtime: Runtime, metric: str, direction: str
) -> tuple[L.Trainer, ModelCheckpoint, Throughput]:
    checkpoint = ModelCheckpoint(
        dirpath=run.checkpoints,
        filename="best",
        monitor=f"val/{metric}",
        mode=direction,
        save_top_k=1,
        save_last=True,
    )
    throughput = Throughput()
    clip = config["train"]["clip"]
    trainer = L.Trainer(
        accelerator=runtime.accelerator,
        devices=runtime.devices,
        max_epochs=config["train"]["max_epochs"],
        gradient_clip_val=clip if clip > 0 else None,
        deterministic=True if runtime.accelerator == "cpu" else "warn",
        callbacks=[checkpoint, EpochLog(run.metrics), throughput],
        logger=False,
        enable_progress_bar=runtime.progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=run.path,
    )
    return trainer, checkpoint, throughput


def _selected_epoch(run: RunDir, key: str, direction: str) -> dict[str, Any]:
    """The epoch row the checkpoint rule selected: the first best validation value."""
    rows = [r for r in run.epochs() if key in r]
    sign = 1.0 if direction == "min" else -1.0
    return min(rows, key=lambda r: sign * r[key])


def train(config: Mapping[str, Any], run_dir: Path | str, runtime: Runtime = Runtime()) -> dict:
    """Run one job to completion and return its result (also written to result.json)."""
    quiet_lightning()
    if runtime.threads:
        torch.set_num_threads(runtime.threads)
    run = RunDir(run_dir)
    run.start_fresh()
    write_json_atomic(run.config, dict(config))
    started, started_at = time.perf_counter(), now()
    memory.reset_peak()

    protocol = get_task(config["task"]["name"]).protocol
    task = build_task(config, runtime.data_dir)
    task.setup("fit")
    torch.manual_seed(config["seeds"]["init"])
    model = SequenceModel(config, task.input_spec(), protocol)
    cuda = runtime.accelerator in ("gpu", "cuda") or (
        runtime.accelerator == "auto" and torch.cuda.is_available()
    )
    step_mode = choose_step_mode(runtime.step_mode, config, task, cuda)
    model.net.set_step_mode(step_mode)
    torch.manual_seed(config["seeds"]["mask"])
    metric, direction = protocol.metric, protocol.direction
    trainer, checkpoint, throughput = _trainer(config, run, runtime, metric, direction)
    fit_started = time.perf_counter()
    trainer.fit(model, datamodule=task)
    train_time = time.perf_counter() - fit_started
    (test,) = trainer.test(model, datamodule=task, ckpt_path="best", verbose=False)

    selected = _selected_epoch(run, f"val/{metric}", direction)
    result = {
        "task": config["task"]["name"],
        "variant": config["variant"],
        "cell": config["model"]["cell"],
        "metric": metric,
        "direction": direction,
        "best_epoch": selected["epoch"],
        "epochs": trainer.current_epoch,
        "val": {k.removeprefix("val/"): v for k, v in selected.items() if k.startswith("val/")},
        "test": {k.removeprefix("test/"): float(v) for k, v in test.items()},
        "selected_checkpoint_score": float(checkpoint.best_model_score),
        "num_parameters": model.num_parameters(),
        "step_mode": step_mode,
        "train_time_s": train_time,
        "wall_time_s": time.perf_counter() - started,
        **throughput.summary(),
        "peak_memory_bytes": memory.peak_bytes(model.device),
        "references": task.references(),
        "data_source": task.source(),
    }
    write_json_atomic(run.result, result)
    prov = provenance(dict(config["seeds"]), list(runtime.command))
    write_json_atomic(run.provenance, {**prov, "started": started_at, "finished": now()})
    run.failed.unlink(missing_ok=True)
    run.mark_done()
    return result
