"""The launchers `regbench launch --launcher NAME` chooses from: a registry of plain functions
with one signature (DomainBed's `command_launchers` is the model), so the command line looks a
launcher up instead of branching, and another launcher is one function and one entry here.

Every launcher takes a grid's jobs, the runs folder, the Runtime and the same LaunchOptions,
runs the jobs that are not finished (each through regbench.run.job.run_job) and returns the
LaunchSummary of what happened to them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from regbench.errors import ConfigError
from regbench.launch.local import launch_local
from regbench.launch.slurm import SlurmOptions, launch_slurm, load_slurm_config
from regbench.plan.jobs import Job
from regbench.run.job import LaunchSummary
from regbench.run.records import RecordStore
from regbench.run.runtime import Runtime


@dataclass(frozen=True)
class LaunchOptions:
    """What `regbench launch` asks of a launcher, whichever it is."""

    retry_failed: bool = False  # rerun failed jobs too
    echo: Callable[[str], None] = print  # where progress lines go
    store: RecordStore | None = None  # the committed records: a recorded job is finished
    workers: int = 1  # local: CPU workers for the cpu jobs
    jobs_per_gpu: int = 1  # local: cuda jobs sharing each visible GPU
    console: Console | None = None  # local: the console of the live view
    slurm_config: str | None = None  # slurm: the options file (load_slurm_config)


Launcher = Callable[[Sequence[Job], Path, Runtime, LaunchOptions], LaunchSummary]


def local_launcher(
    jobs: Sequence[Job], runs_dir: Path, runtime: Runtime, options: LaunchOptions
) -> LaunchSummary:
    """On this machine's workers (local.py)."""
    return launch_local(
        jobs,
        runs_dir,
        runtime,
        options.retry_failed,
        options.echo,
        workers=options.workers,
        jobs_per_gpu=options.jobs_per_gpu,
        console=options.console,
        store=options.store,
    )


def slurm_launcher(
    jobs: Sequence[Job], runs_dir: Path, runtime: Runtime, options: LaunchOptions
) -> LaunchSummary:
    """As one SLURM job array through submitit (slurm.py), placed by the SLURM options file;
    the local launcher's placement options are refused, not ignored."""
    if options.workers != 1 or options.jobs_per_gpu != 1:
        raise ConfigError(
            "--launcher slurm: --workers and --jobs-per-gpu are the local launcher's; "
            "SLURM places jobs by the --slurm-config options."
        )
    config = load_slurm_config(options.slurm_config) if options.slurm_config else SlurmOptions()
    return launch_slurm(
        jobs, runs_dir, runtime, config, options.retry_failed, options.echo, options.store
    )


LAUNCHERS: dict[str, Launcher] = {"local": local_launcher, "slurm": slurm_launcher}
