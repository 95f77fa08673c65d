"""The Lightning Trainer of a run: checkpoints, records, logger, and the device and devices
of the config's `execution` section."""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.profilers import PassThroughProfiler

from regbench.errors import ConfigError
from regbench.run.callbacks import AttemptClock, DivergenceGuard, EpochLog, RandomState, Throughput
from regbench.run.cluster import slurm_plugins
from regbench.run.rundir import RunDir
from regbench.run.runtime import Runtime, accelerator, execution


@dataclass
class Parts:
    trainer: L.Trainer
    checkpoint: ModelCheckpoint  # best.ckpt, selected on validation
    throughput: Throughput
    logger: Any


class EpochWandbLogger(WandbLogger):
    """Lightning's WandbLogger whose history is one row per epoch, the rows of metrics.jsonl
    (EpochLog), then the test metrics; Lightning's own metric calls are left out. A resumed
    run sends its kept rows again into its new W&B run; a run that W&B itself resumed
    (online) skips the epochs it already holds."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._last_epoch: int | None = None

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Lightning's per-step and per-epoch calls: the epoch rows stand for them."""

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        """One epoch row of metrics.jsonl, unless the W&B run has that epoch already."""
        if self._last_epoch is None:
            run = self.experiment
            self._last_epoch = int(run.summary.get("epoch", -1)) if run.resumed else -1
        if row["epoch"] > self._last_epoch:
            self.experiment.log(_with_step(row, row["step"]))
            self._last_epoch = row["epoch"]

    def log_test(self, metrics: Mapping[str, float], step: int) -> None:
        self.experiment.log(_with_step(metrics, step))


class Unprofiled(PassThroughProfiler):
    """Lightning's default profiler, which records nothing, without its cost: the Trainer
    wraps each of its hook calls (about 80 a training step) in `profiler.profile(name)`, a
    generator-based context manager, about 1 µs each; this one hands back one reusable no-op
    context."""

    _nothing = nullcontext()

    def profile(self, action_name: str) -> AbstractContextManager:  # type: ignore[override]
        return self._nothing


def _with_step(row: Mapping[str, Any], step: int) -> dict[str, Any]:
    """A history row on the x axis Lightning's WandbLogger defines (trainer/global_step)."""
    return {**{k: v for k, v in row.items() if k != "step"}, "trainer/global_step": step}


def wandb_logger(config: Mapping[str, Any], run: RunDir, runtime: Runtime, job_id: str) -> Any:
    """The run's EpochWandbLogger: offline unless configured, files in the run directory, the
    job id as the W&B run id (a resumed run continues it), group = grid, job type = task,
    tags = variant and cell. False when W&B is disabled or not installed. Offline, the earlier
    attempts' offline runs are removed first: this attempt's run logs their epochs again, so
    the run directory holds one offline run with every epoch once."""
    mode = os.environ.get("WANDB_MODE", runtime.wandb)
    if mode == "disabled":
        return False
    os.environ.setdefault("WANDB_SILENT", "true")
    try:
        import wandb  # noqa: F401 (Lightning's WandbLogger imports it only when it starts)
    except ImportError:
        if mode == "online":
            raise ConfigError("--wandb online needs the wandb package: pip install wandb") from None
        warnings.warn("wandb is not installed: this run writes no W&B files", stacklevel=2)
        return False

    if mode == "offline" and os.environ.get("LOCAL_RANK", "0") == "0":
        for earlier in (run.path / "wandb").glob("offline-run-*"):
            shutil.rmtree(earlier, ignore_errors=True)
    logger = EpochWandbLogger(
        project=runtime.project,
        id=job_id,
        name=f"{config['task']['name']}-{config['variant']}-{config['model']['cell']}"
        f"-s{config['seed']}",
        save_dir=str(run.path),
        mode=mode,
        resume="allow",
        group=runtime.group,
        job_type=config["task"]["name"],
        tags=[config["variant"], config["model"]["cell"]],
        config=dict(config),
        settings=_quiet_settings(),
    )
    # Lightning passes wandb.init `anonymous=None` unless asked for anonymous logging, and
    # wandb, which deprecated the setting, warns at any value ("The anonymous setting has no
    # effect …", once per process: in every worker); without it wandb.init does the same
    logger._wandb_init.pop("anonymous", None)
    return logger


def _quiet_settings() -> Any:
    try:
        import wandb
    except ImportError:
        return None
    return wandb.Settings(silent=True, console="off", x_disable_stats=True)


def build_trainer(
    config: Mapping[str, Any],
    run: RunDir,
    runtime: Runtime,
    metric: str,
    direction: str,
    job_id: str,
    clock: AttemptClock | None = None,
) -> Parts:
    """The Trainer: best.ckpt when validation improves, last.ckpt after every epoch (after its
    metrics row, so a resumed run never lacks a row), the records, the logger; `clock` keeps
    attempts.json's wall time current."""
    checkpoint = ModelCheckpoint(
        dirpath=run.checkpoints,
        filename="best",
        monitor=f"val/{metric}",
        mode=direction,
        save_top_k=1,
    )
    # Lightning's save_last=True writes last.ckpt only when best.ckpt is written; this one
    # writes it at the end of every training epoch (monitor None: the latest is kept)
    last = ModelCheckpoint(
        dirpath=run.checkpoints,
        filename="last",
        save_top_k=1,
        save_on_train_epoch_end=True,
        enable_version_counter=False,
    )
    throughput = Throughput()
    logger = wandb_logger(config, run, runtime, job_id)
    epochs = EpochLog(run.metrics, logger.log_epoch if logger else None)
    callbacks = [epochs, throughput, RandomState(), DivergenceGuard(), *([clock] if clock else [])]
    clip = config["train"]["clip"]
    devices, device = execution(config)["devices"], accelerator(config)
    trainer = L.Trainer(
        accelerator=device,
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        max_epochs=config["train"]["max_epochs"],
        limit_train_batches=config["train"]["limit_batches"] or None,
        # a limited evaluation reads a seeded random subset, not the first batches (tasks/base.py)
        limit_val_batches=config["train"]["limit_eval_batches"] or None,
        limit_test_batches=config["train"]["limit_eval_batches"] or None,
        gradient_clip_val=clip if clip > 0 else None,
        deterministic=True if device == "cpu" else "warn",
        callbacks=[*callbacks, checkpoint, last],
        logger=logger,
        log_every_n_steps=50,
        enable_progress_bar=runtime.progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=run.path,
        profiler=Unprofiled(),
        plugins=slurm_plugins(),
    )
    return Parts(trainer, checkpoint, throughput, logger)
