"""Run a grid's pending jobs on SLURM as one submitit job array.

Each job is one array task (`TrainTask`) that trains into its content-addressed run
directory, exactly as the local launcher does; `array_parallelism` throttles how many run at
once and `gpus_per_task` gives each task its own GPU (SLURM sets CUDA_VISIBLE_DEVICES).
What a job computes on (threads, device, step mode) is its config's `execution` section,
whatever the allocation: a cuda job needs `gpus_per_task`, and a job's `execution.threads`
should not exceed `cpus_per_task`.
The launcher waits for the array: a job that raised has written failed.json itself (through
`run_job`); a task that ended without a result (os._exit, out of memory, a signal, a node
failure, a preemption that cancelled it) is recorded here with the state SLURM reports.

Preemption and timeouts: submitit asks SLURM for `--signal=USR2@<signal_delay_s>`; on that
signal it calls `TrainTask.checkpoint`, which requeues the same task, and the run resumes
from its run directory (checkpoints/last.ckpt). Lightning must not requeue as well: the
Trainer of a run inside SLURM gets `slurm_plugins()` (regbench.run.cluster).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import submitit
from lightning.pytorch.utilities.exceptions import SIGTERMException
from submitit.core.utils import FailedJobError

from regbench.errors import ConfigError, unknown
from regbench.plan.jobs import Job
from regbench.plan.yamlfile import read_yaml
from regbench.run.job import (
    LaunchSummary,
    check_checkpoints,
    check_data,
    pending,
    record_failure,
    run_job,
)
from regbench.run.records import RecordStore
from regbench.run.result import Outcome
from regbench.run.rundir import RunDir
from regbench.run.runtime import Runtime, execution, require_one_device

POLL_S = 2.0  # how often result files (and, at submitit's pace, sacct) are checked
QUEUE_CHECK_S = 30.0  # how often squeue is asked which array tasks SLURM still holds
RESULT_GRACE_S = 15.0  # a task in a final state gets this long for its result file to appear
SIGTERM_GRACE_S = 120.0  # after Lightning stops on SIGTERM: wait this long for requeue or kill
STDERR_LINES = 40  # of a task that ended without a result, kept in failed.json
# what only makes sense on the submitting host: a process that used W&B in-process points
# its children at its own W&B service socket, which tasks must not try to share
HOST_ONLY_ENV = ("WANDB_SERVICE",)


# ----------------------------------------------------------------------------- options
@dataclass(frozen=True)
class SlurmOptions:
    """What every task of the array asks SLURM for (the same for all tasks)."""

    partition: str | None = None
    account: str | None = None
    time_min: int = 60  # wall-time limit of one task; a timed-out task is requeued
    gpus_per_task: int | None = None  # GPUs per job (each job is one task); None: no GPU
    cpus_per_task: int | None = None  # the jobs' execution.threads should fit in it
    mem_gb: float | None = None
    array_parallelism: int | None = None  # the `%` throttle: at most this many at once
    extra: Mapping[str, Any] = field(default_factory=dict)  # more sbatch / submitit options


TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "partition": ((str,), "a string"),
    "account": ((str,), "a string"),
    "time_min": ((int,), "an integer"),
    "gpus_per_task": ((int,), "an integer"),
    "cpus_per_task": ((int,), "an integer"),
    "mem_gb": ((int, float), "a number"),
    "array_parallelism": ((int,), "an integer"),
    "extra": ((dict,), "a mapping of sbatch or submitit options"),
}
POSITIVE = ("time_min", "gpus_per_task", "cpus_per_task", "mem_gb", "array_parallelism")
# sbatch options the launcher sets from the keys above or itself; `extra` may not set them
MANAGED = {
    "partition": "partition",
    "account": "account",
    "time": "time_min",
    "mem": "mem_gb",
    "gpus_per_task": "gpus_per_task",
    "cpus_per_task": "cpus_per_task",
    "array_parallelism": "array_parallelism",
    "array": None,
    "output": None,
    "error": None,
    "job_name": None,
    "nodes": None,
    "ntasks": None,
    "ntasks_per_node": None,
    "gpus": None,
    "gpus_per_node": "gpus_per_task",
}


def load_slurm_config(path: str | Path) -> SlurmOptions:
    """Read a SLURM options file (YAML); a problem is one ConfigError line naming the key."""
    path = Path(path)
    where = str(path)
    raw = read_yaml(path)
    if raw is None:
        return SlurmOptions()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a SLURM config must be a mapping of {', '.join(TYPES)}.")
    return SlurmOptions(**{str(k): _checked(str(k), v, where) for k, v in raw.items()})


def _checked(key: str, value: Any, where: str) -> Any:
    if key not in TYPES:
        raise unknown("SLURM config key", key, TYPES, where)
    if value is None:
        return {} if key == "extra" else None
    kinds, text = TYPES[key]
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ConfigError(f"{where}: {key} must be {text}, got {value!r}.")
    if key in POSITIVE and value <= 0:
        raise ConfigError(f"{where}: {key} must be positive, got {value!r}.")
    return _checked_extra(value, where) if key == "extra" else value


def _checked_extra(extra: dict, where: str) -> dict[str, Any]:
    for key in extra:
        name = str(key).replace("-", "_")
        if name in MANAGED:
            instead = MANAGED[name]
            hint = f"set {instead!r} at the top level" if instead else "the launcher sets it"
            raise ConfigError(f"{where}: extra.{key} is not allowed: {hint}.")
    return {str(k): v for k, v in extra.items()}


# ----------------------------------------------------------------------------- in the job
class TrainTask(submitit.helpers.Checkpointable):
    """One grid job as one array task. On preemption or timeout submitit calls
    `checkpoint()`, which resubmits this same task; it then resumes from its run directory."""

    def __init__(self, config: dict[str, Any], run_dir: str, runtime: Runtime) -> None:
        self.config = config
        self.run_dir = run_dir
        self.runtime = runtime

    def __call__(self) -> Outcome:
        try:
            return run_job(self.config, self.run_dir, self.runtime)
        except SIGTERMException:
            # Lightning stops training on SIGTERM, while under SLURM a SIGTERM is followed by
            # submitit's requeue signal (preemption) or by SIGKILL: wait for either.
            _sleep_until(time.monotonic() + SIGTERM_GRACE_S)
            raise


def _sleep_until(deadline: float) -> None:
    while time.monotonic() < deadline:
        time.sleep(1.0)


# ----------------------------------------------------------------------------- submission
def submit_folder(runs_dir: Path) -> Path:
    """A fresh submitit folder per launch: job ids restart after a SLURM state purge, and
    submitit would trust a stale result file of an old job with the same id."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return Path(runs_dir) / ".submitit" / f"{stamp}-{secrets.token_hex(3)}"


def make_executor(folder: Path, options: SlurmOptions) -> submitit.SlurmExecutor:
    """A SlurmExecutor asking for `options`; each array task is a single task on one node."""
    if shutil.which("sbatch") is None:
        raise ConfigError("the SLURM launcher needs sbatch, squeue and sacct; sbatch not found.")
    executor = submitit.SlurmExecutor(folder=folder)
    params: dict[str, Any] = {"job_name": "regbench", "time": options.time_min}
    params |= {"nodes": 1, "ntasks_per_node": 1}
    for key in ("partition", "account", "cpus_per_task", "array_parallelism"):
        if getattr(options, key) is not None:
            params[key] = getattr(options, key)
    if options.gpus_per_task:  # one task per job: its GPUs are the job's (--gpus-per-node)
        params["gpus_per_node"] = options.gpus_per_task
    if options.mem_gb is not None:
        params["mem"] = options.mem_gb
    # submitit's own parameters (qos, constraint, signal_delay_s, setup, ...) go by name,
    # anything else (reservation, mail-user, ...) straight into the sbatch script
    named = submitit.SlurmExecutor._valid_parameters()
    extra = {k.replace("-", "_"): v for k, v in options.extra.items()}
    params.update({k: v for k, v in extra.items() if k in named})
    raw = {k: v for k, v in options.extra.items() if k.replace("-", "_") not in named}
    if raw:
        params["additional_parameters"] = raw
    executor.update_parameters(**params)
    return executor


def submit(executor: submitit.SlurmExecutor, tasks: list[TrainTask]) -> list[submitit.Job]:
    """Submit the tasks as one array; sbatch refusing it (a wrong partition, account or
    limit) is a one-line ConfigError with sbatch's own words."""
    try:
        with _env_without(*HOST_ONLY_ENV):
            return executor.submit_array(tasks)
    except FailedJobError as err:
        lines = [ln for ln in str(err).splitlines() if "error" in ln.lower()] or [str(err)]
        raise ConfigError(f"sbatch refused the job array: {lines[0].strip()}") from None


def check_allocation(
    jobs: Sequence[Job], options: SlurmOptions, grid: str | None, echo: Callable[[str], None]
) -> None:
    """Before anything is submitted: refuse jobs over several devices or on cuda without
    gpus_per_task; note jobs that use more threads than cpus_per_task."""
    where = f"grid {grid}" if grid else "--launcher slurm"
    require_one_device(jobs, where)
    cuda = [job for job in jobs if execution(job.config)["device"] == "cuda"]
    if cuda and not options.gpus_per_task:
        raise ConfigError(
            f"{where}: {cuda[0].label} ({cuda[0].id}) trains on cuda (execution.device), but "
            "the SLURM config gives tasks no GPU; set gpus_per_task: 1 in it."
        )
    threads = max((execution(job.config)["threads"] for job in jobs), default=1)
    if options.cpus_per_task and threads > options.cpus_per_task:
        echo(
            f"note: jobs use {threads} threads (execution.threads) on {options.cpus_per_task} CPUs"
        )


@contextlib.contextmanager
def _env_without(*names: str) -> Iterator[None]:
    """os.environ without `names` (sbatch hands the tasks the submitting environment)."""
    saved = {name: os.environ.pop(name) for name in names if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


# ----------------------------------------------------------------------------- waiting
def _queued(array_id: str) -> set[str] | None:
    """The task ids ("123_4") SLURM still holds for the array; None when squeue can't tell."""
    command = ["squeue", "--noheader", "--array", "--format=%i", f"--jobs={array_id}"]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode == 0:
        return set(out.stdout.split())
    return set() if "Invalid job id" in out.stderr else None


def _finished(jobs: Sequence[submitit.Job]) -> Iterator[int]:
    """Indices of `jobs` as they end: with a result file; in a final sacct state without one
    for RESULT_GRACE_S (a shared file system may show the file late); or, for the states
    submitit would wait on forever (no accounting, PREEMPTED where preemption cancels),
    absent from squeue at two checks in a row."""
    array_id = jobs[0].job_id.split("_")[0]
    waiting, absent = set(range(len(jobs))), set()
    ended: dict[int, float] = {}  # when a final state without a result file was first seen
    next_check = time.monotonic() + QUEUE_CHECK_S
    while waiting:
        now = time.monotonic()
        for i in sorted(waiting):
            if jobs[i].paths.result_pickle.exists() or (
                jobs[i].done() and now - ended.setdefault(i, now) >= RESULT_GRACE_S
            ):
                waiting.discard(i)
                yield i
        if waiting and now >= next_check:
            next_check = now + QUEUE_CHECK_S
            queued = _queued(array_id)
            if queued is not None:
                gone = {i for i in waiting if jobs[i].job_id not in queued}
                if gone - absent:  # newly gone: ask sacct now rather than at submitit's pace
                    jobs[min(gone - absent)].done(force_check=True)
                for i in sorted(gone & absent):
                    waiting.discard(i)
                    yield i
                absent = gone
        if waiting:
            time.sleep(POLL_S)


def slurm_state(job: submitit.Job) -> str:
    """How SLURM says the task ended, e.g. "state FAILED, exit code 3"."""
    command = ["sacct", "--noheader", "--parsable2", "--allocations"]
    command += ["--format=State,ExitCode", f"--jobs={job.job_id}"]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=60)
        state, code = out.stdout.strip().splitlines()[-1].split("|")
    except (OSError, subprocess.TimeoutExpired, IndexError, ValueError):
        return f"state {job.state}"
    status, _, sig = code.partition(":")
    ended = f"signal {sig}" if sig not in ("", "0") else f"exit code {status}"
    return f"state {state.split()[0]}, {ended}"


def outcome(job: submitit.Job, run: RunDir) -> Outcome:
    """The task's outcome, or a failure recorded in its run directory when the task ended
    without one (a job that raised inside its run has recorded its failure through run_job)."""
    kind = "error"
    if job.paths.result_pickle.exists():
        try:
            return job.result()
        except FailedJobError as err:  # raised outside run_job, e.g. unpickling the task
            error = f"SLURM job {job.job_id} raised outside the run ({slurm_state(job)})"
            trace = str(err)
    else:  # os._exit, out of memory, a signal, a node failure, a cancellation
        error = f"SLURM job {job.job_id} ended without a result ({slurm_state(job)})"
        trace = "\n".join((job.stderr() or "").splitlines()[-STDERR_LINES:])
        kind = "crashed"
    if run.state() == "done":  # finished its run, then died before submitit saved the result
        return Outcome.done(run.read_result())
    record_failure(run, error, trace, kind=kind)
    return Outcome.failed(error)


# ----------------------------------------------------------------------------- launch
def launch_slurm(
    jobs: Sequence[Job],
    runs_dir: Path,
    runtime: Runtime,
    options: SlurmOptions,
    retry_failed: bool = False,
    echo: Callable[[str], None] = print,
    store: RecordStore | None = None,
) -> LaunchSummary:
    """Run every job of `jobs` that is not done (and not failed, unless retry_failed; a
    committed record in `store` counts) as one SLURM job array, wait, and summarise."""
    todo = pending(jobs, runs_dir, retry_failed, store)
    check_checkpoints(todo, runs_dir)
    check_allocation(todo, options, runtime.group, echo)
    check_data(todo, runtime)
    summary = LaunchSummary(total=len(jobs), skipped=len(jobs) - len(todo))
    echo(f"{summary.skipped} of {len(jobs)} runs already finished; {len(todo)} to run.")
    if not todo:
        return summary
    folder = submit_folder(runs_dir)
    executor = make_executor(folder, options)
    runs = [RunDir.of(job.id, runs_dir) for job in todo]
    tasks = [
        TrainTask(dict(j.config), str(r.path), runtime) for j, r in zip(todo, runs, strict=True)
    ]
    submitted = submit(executor, tasks)
    echo(
        f"submitted SLURM array {submitted[0].job_id.split('_')[0]} ({len(tasks)} tasks; {folder})"
    )
    results: dict[int, Outcome] = {}
    for count, i in enumerate(_finished(submitted), 1):
        results[i] = outcome(submitted[i], runs[i])
        echo(
            f"[{count}/{len(todo)}] {todo[i].label} ({todo[i].id}, SLURM job "
            f"{submitted[i].job_id}): {results[i].describe()}"
        )
    for i, job in enumerate(todo):
        summary.add(job, results[i])
    return summary
