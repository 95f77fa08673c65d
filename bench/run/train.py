"""train(job): one run, from a resolved config to a finished run directory.

Lightning trains, with the CPU threads, device and step mode of the config's `execution`
section; the checkpoint with the best validation metric is selected; the test split is
evaluated once, on that checkpoint. Everything is written to the run directory, the
`done` marker last. An unfinished run directory with a checkpoint resumes from it: model,
optimizer, scheduler, loop position and random state, so it ends where an uninterrupted run
would have. Every checkpoint is loaded without running code (rundir.load_checkpoint, and
Lightning's loads with weights_only=True and the same allow-list).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import torch
from lightning.fabric.utilities.warnings import PossibleUserWarning

from regbench.models import SequenceModel
from regbench.plan.jobs import ID_LENGTH, config_hash
from regbench.run import memory
from regbench.run.callbacks import AttemptClock
from regbench.run.provenance import now, provenance
from regbench.run.result import RunResult
from regbench.run.rundir import Resume, RunDir, safe_loading, write_json_atomic
from regbench.run.runtime import Runtime, choose_step_mode, cpu_threads
from regbench.run.trainer import Parts, build_trainer
from regbench.tasks import Task, get_task
from regbench.tasks.sources import data_dir

__all__ = ["Runtime", "build_task", "train"]


def quiet_lightning() -> None:
    """Keep Lightning's banner lines and data-loader hints out of benchmark output."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=PossibleUserWarning)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    # SequenceModel hands CPU batches on unmoved (its transfer_batch_to_device), which Lightning
    # notes because the batches come from a LightningDataModule (the task)
    warnings.filterwarnings("ignore", message=r"You have overridden `transfer_batch_to_device`")


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


def _selected_epoch(run: RunDir, key: str, direction: str) -> dict[str, Any]:
    """The epoch row the checkpoint rule selected: the first best validation value."""
    rows = [r for r in run.epochs() if key in r]
    sign = 1.0 if direction == "min" else -1.0
    return min(rows, key=lambda r: sign * r[key])


def _begin(run: RunDir, config: Mapping[str, Any]) -> tuple[Resume | None, AttemptClock]:
    """Resume point and attempt clock of this attempt (counted in attempts.json at once); a
    fresh start clears the metrics and checkpoints an earlier attempt left."""
    resume = run.resume_point()
    if resume is None:
        run.start_fresh()
        write_json_atomic(run.config, dict(config))
    return resume, AttemptClock(run.attempts, run.begin_attempt(resume))


def train(
    config: Mapping[str, Any], run_dir: Path | str, runtime: Runtime | None = None
) -> RunResult:
    """Run (or resume) one job to completion; return its result (also in result.json; empty
    in a DDP child process, whose rank 0 writes it)."""
    with cpu_threads(config):
        return _train(config, RunDir(run_dir), runtime or Runtime())


def _train(config: Mapping[str, Any], run: RunDir, runtime: Runtime) -> RunResult:
    quiet_lightning()
    if os.environ.get("LOCAL_RANK", "0") != "0":  # a DDP child: rank 0 owns the directory
        last = run.checkpoints / "last.ckpt"
        return _attempt(config, run, runtime, last if last.is_file() else None, None)
    point, clock = _begin(run, config)
    try:
        return _attempt(config, run, runtime, point.path if point else None, clock)
    except BaseException:
        clock.save()  # a failed attempt's time counts too
        raise


def _attempt(
    config: Mapping[str, Any],
    run: RunDir,
    runtime: Runtime,
    resume: Path | None,
    clock: AttemptClock | None,
) -> RunResult:
    started_at = now()
    memory.reset_peak()

    protocol = get_task(config["task"]["name"]).protocol
    task = build_task(config, runtime.data_dir)
    task.setup("fit")
    torch.manual_seed(config["seeds"]["init"])
    model = SequenceModel(config, task.input_spec(), protocol)
    step_mode = choose_step_mode(config, task)
    model.net.set_step_mode(step_mode)
    torch.manual_seed(config["seeds"]["mask"])
    job_id = config_hash(config)[:ID_LENGTH]
    parts = build_trainer(config, run, runtime, protocol.metric, protocol.direction, job_id, clock)
    try:
        test = _fit_and_test(parts, model, task, resume)
    finally:
        _close(parts)
    if clock is None or not parts.trainer.is_global_zero:
        return cast(RunResult, {})  # a DDP child: rank 0 writes the result
    attempts = clock.save()
    result = _result(config, run, protocol, parts, test, model, task)
    result |= {
        "step_mode": step_mode,
        "wall_time_s": attempts["wall_time_s"],
        "attempts": attempts["attempts"],
    }
    write_json_atomic(run.result, result)
    prov = provenance(dict(config["seeds"]), list(runtime.command))
    write_json_atomic(run.provenance, {**prov, "started": started_at, "finished": now()})
    run.failed.unlink(missing_ok=True)
    run.mark_done()
    return result


def _fit_and_test(
    parts: Parts, model: SequenceModel, task: Task, resume: Path | None
) -> dict[str, float]:
    """Train (from `resume` if given), then test once on best.ckpt; both checkpoint loads
    without running code. The test metrics end the W&B history."""
    trainer = parts.trainer
    with safe_loading():
        trainer.fit(model, datamodule=task, ckpt_path=resume, weights_only=True)
        best = parts.checkpoint.best_model_path
        (test,) = trainer.test(
            model, datamodule=task, ckpt_path=best, weights_only=True, verbose=False
        )
    if parts.logger and trainer.is_global_zero:
        parts.logger.log_test(test, trainer.global_step)
    return test


def _result(
    config: Mapping[str, Any],
    run: RunDir,
    protocol: Any,
    parts: Parts,
    test: Mapping[str, float],
    model: SequenceModel,
    task: Task,
) -> RunResult:
    metric, direction = protocol.metric, protocol.direction
    selected = _selected_epoch(run, f"val/{metric}", direction)
    epochs = run.epochs()
    return {
        "task": config["task"]["name"],
        "variant": config["variant"],
        "cell": config["model"]["cell"],
        "metric": metric,
        "direction": direction,
        "best_epoch": selected["epoch"],
        "epochs": len(epochs),
        "val": {k.removeprefix("val/"): v for k, v in selected.items() if k.startswith("val/")},
        "test": {k.removeprefix("test/"): float(v) for k, v in test.items()},
        "selected_checkpoint_score": float(parts.checkpoint.best_model_score),
        "num_parameters": model.num_parameters(),
        "train_time_s": sum(e["epoch_time_s"] for e in epochs),
        **parts.throughput.summary(),
        "peak_memory_bytes": memory.peak_bytes(model.device),
        "references": task.references(),
        "data_source": task.source(),
    }


def _close(parts: Parts) -> None:
    """Finish the W&B run, so a worker can start the next job's."""
    if parts.logger:
        import wandb

        if wandb.run is not None:
            wandb.finish()
