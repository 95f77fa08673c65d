"""The Lightning Trainer of a run: checkpoints, records, logger, and the device and devices
of the config's `execution` section."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from regbench.callbacks import DivergenceGuard, EpochLog, RandomState, Throughput
from regbench.errors import ConfigError
from regbench.rundir import RunDir
from regbench.runtime import Runtime, accelerator, execution
from regbench.slurm import slurm_plugins


@dataclass
class Parts:
    trainer: L.Trainer
    checkpoint: ModelCheckpoint
    throughput: Throughput
    logger: Any


def wandb_logger(config: Mapping[str, Any], run: RunDir, runtime: Runtime, job_id: str) -> Any:
    """Lightning's WandbLogger: offline unless configured, files in the run directory, the
    job id as the W&B run id (a resumed run continues it), group = grid, job type = task,
    tags = variant and cell. False when W&B is disabled or not installed."""
    mode = os.environ.get("WANDB_MODE", runtime.wandb)
    if mode == "disabled":
        return False
    os.environ.setdefault("WANDB_SILENT", "true")
    try:
        import wandb  # noqa: F401 (Lightning's WandbLogger imports it only when it starts)
        from lightning.pytorch.loggers import WandbLogger
    except ImportError:
        if mode == "online":
            raise ConfigError("--wandb online needs the wandb package: pip install wandb") from None
        warnings.warn("wandb is not installed: this run writes no W&B files", stacklevel=2)
        return False

    return WandbLogger(
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
) -> Parts:
    checkpoint = ModelCheckpoint(
        dirpath=run.checkpoints,
        filename="best",
        monitor=f"val/{metric}",
        mode=direction,
        save_top_k=1,
        save_last=True,
    )
    throughput = Throughput()
    logger = wandb_logger(config, run, runtime, job_id)
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
        callbacks=[checkpoint, EpochLog(run.metrics), throughput, RandomState(), DivergenceGuard()],
        logger=logger,
        log_every_n_steps=50,
        enable_progress_bar=runtime.progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=run.path,
        plugins=slurm_plugins(),
    )
    return Parts(trainer, checkpoint, throughput, logger)
