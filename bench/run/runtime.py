"""How a run executes. What changes its numbers (CPU threads, device, step mode, devices per
run) is the config's `execution` section, part of the job's identity; this module reads it
and applies it. `Runtime` holds only what does not change the numbers: where the data lies,
W&B, the progress bar and the command that launched the run."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from regbench.errors import ConfigError
from regbench.plan.config import EXECUTION
from regbench.tasks import Task

if TYPE_CHECKING:
    from regbench.plan.jobs import Job

# Training step-iterations (time steps × batches × epochs) from which compiling the custom
# cells pays off on a CPU: measured here, a chunk compiles in 6–30 s and saves 0.08–0.12 ms
# per step-iteration (results/perf/cpu.md), so 10⁶ step-iterations repay it several times.
COMPILE_WORK = 1_000_000


@dataclass(frozen=True)
class Runtime:
    """Settings of a run that leave its numbers unchanged (not part of the job)."""

    progress: bool = False
    data_dir: str | None = None  # local data in the original formats (else $REGBENCH_DATA/hub)
    wandb: str = "offline"  # offline, online or disabled (WANDB_MODE overrides)
    project: str = "regbench"  # the W&B project
    group: str | None = None  # the grid's name: the W&B group
    command: tuple[str, ...] = field(default_factory=tuple)


def execution(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config's execution settings, the defaults for any it lacks."""
    return {k: f.default for k, f in EXECUTION.items()} | dict(config.get("execution", {}))


def accelerator(config: Mapping[str, Any]) -> str:
    """Lightning's name for the config's device."""
    return "gpu" if execution(config)["device"] == "cuda" else "cpu"


@contextlib.contextmanager
def cpu_threads(config: Mapping[str, Any]) -> Iterator[int]:
    """torch's intra-op threads (and OMP_NUM_THREADS, which Lightning's DDP and child
    processes read) set to the config's `execution.threads`, and subnormal floats flushed
    to zero if `execution.flush_denormal`, while the run trains."""
    settings = execution(config)
    threads = settings["threads"]
    saved, saved_env = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_flush_denormal(settings["flush_denormal"])
    try:
        yield threads
    finally:
        torch.set_flush_denormal(False)
        torch.set_num_threads(saved)
        if saved_env is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved_env


def training_work(config: Mapping[str, Any], task: Task) -> int:
    """Step-iterations the run trains: time steps × batches per epoch × epochs, counting at
    most `train.limit_batches` batches per epoch when it is set."""
    per_epoch = task.step_iterations_per_epoch()
    limit = config["train"].get("limit_batches", 0)
    if limit:
        batches = max(1, _batches_per_epoch(config, task, per_epoch))
        per_epoch = per_epoch * min(limit, batches) // batches
    return per_epoch * config["train"]["max_epochs"]


def _batches_per_epoch(config: Mapping[str, Any], task: Task, step_iterations: int) -> int:
    """The training loader's length; a variable-BPTT language-model loader has none (its
    window count changes from epoch to epoch), so there it is step-iterations / bptt."""
    try:
        return len(task.train_dataloader())
    except TypeError:
        return step_iterations // config["task"]["params"]["bptt"]


def choose_step_mode(config: Mapping[str, Any], task: Task) -> str:
    """'eager', 'compile' or 'graph' for this run, from its config alone: `execution.step_mode`,
    or for 'auto' compiled CUDA graphs on CUDA, and on the CPU compile for runs long enough to
    repay the compile."""
    settings = execution(config)
    if settings["step_mode"] != "auto":
        return settings["step_mode"]
    if settings["device"] == "cuda":
        return "graph"
    return "compile" if training_work(config, task) >= COMPILE_WORK else "eager"


def require_gpu(jobs: Sequence[Job], where: str) -> None:
    """A ConfigError, before any run starts, when a job trains on cuda and no GPU is visible."""
    job, count = _first(jobs, lambda settings: settings["device"] == "cuda")
    if job is not None and not torch.cuda.is_available():
        named = f"{job.label} ({job.id})"
        what = (
            f"{count} jobs train on cuda, e.g. {named}" if count > 1 else f"{named} trains on cuda"
        )
        raise ConfigError(
            f"{where}: {what} (execution.device), but no GPU is visible here; run on a "
            "machine with one, or set execution.device: cpu."
        )


def require_one_device(jobs: Sequence[Job], where: str) -> None:
    """A ConfigError when a job trains over several devices, which a grid launcher's slot or
    array task does not give it (`regbench run` does)."""
    job, _ = _first(jobs, lambda settings: settings["devices"] > 1)
    if job is not None:
        n = execution(job.config)["devices"]
        raise ConfigError(
            f"{where}: {job.label} ({job.id}) trains over {n} devices (execution.devices); "
            f"a grid launch trains each job on one, so run it alone with `regbench run "
            f"--set execution.devices={n}`."
        )


def _first(jobs: Sequence[Job], test: Callable[[dict[str, Any]], bool]) -> tuple[Job | None, int]:
    """The first job whose execution settings pass `test`, and how many do."""
    hits = [job for job in jobs if test(execution(job.config))]
    return (hits[0] if hits else None), len(hits)
