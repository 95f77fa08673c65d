"""The local launcher: a grid's unfinished jobs on this machine's workers, N CPU workers for
cpu jobs, one slot per GPU (or several per GPU) for cuda jobs, with a live view.

Each slot owns one spawned worker process that runs jobs of its device in turn (torch and
Lightning are imported once per worker); the slot's environment (CUDA_VISIBLE_DEVICES) and
the job's thread count (its config's `execution.threads`, whatever the number of workers)
are set in the worker before it touches a device; a job with another thread count gets a
fresh worker. A worker dies with the launcher (PR_SET_PDEATHSIG), so a killed launch leaves
no orphan training a job; a worker that dies on its own (os._exit, a signal, out of memory)
is recorded as the job's failure and replaced.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from regbench.launch.progress import Event, LaunchView
from regbench.plan.jobs import Job
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
from regbench.run.runtime import Runtime, execution, require_gpu, require_one_device


@dataclass(frozen=True)
class Slot:
    name: str
    device: str  # the jobs it takes: "cpu" or "cuda" (execution.device)
    env: dict[str, str]


def device_of(job: Job) -> str:
    return execution(job.config)["device"]


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def plan_slots(jobs: Sequence[Job], workers: int = 1, jobs_per_gpu: int = 1) -> list[Slot]:
    """`jobs_per_gpu` slots per visible GPU when there are cuda jobs (small RNNs underuse a
    big GPU, so several jobs may share one), and `workers` CPU slots for the cpu jobs."""
    devices = {device_of(job) for job in jobs}
    slots = []
    if "cuda" in devices:
        slots += [
            Slot(f"gpu{g}/{k}", "cuda", {"CUDA_VISIBLE_DEVICES": str(g)})
            for g in range(gpu_count())
            for k in range(jobs_per_gpu)
        ]
    if "cpu" in devices or not jobs:
        slots += [Slot(f"cpu{i}", "cpu", {"CUDA_VISIBLE_DEVICES": ""}) for i in range(workers)]
    return slots


def _init_worker(env: dict[str, str], threads: int) -> None:
    """In the worker, before anything touches a device: its slot's environment, its jobs'
    thread count, and death with the launcher."""
    os.environ.update(env)
    os.environ.pop("WANDB_SERVICE", None)  # start our own W&B service, not the launcher's
    os.environ["OMP_NUM_THREADS"] = str(threads)
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Worker:
    """One spawned process running the jobs of one slot, replaced if it dies."""

    def __init__(self, slot: Slot, runtime: Runtime) -> None:
        self.slot = slot
        self.runtime = runtime
        self.pool: ProcessPoolExecutor | None = None
        self.threads = 0  # the thread count the worker process was started with

    def run(self, job: Job, run_dir: RunDir) -> Outcome:
        threads = execution(job.config)["threads"]
        if self.pool is not None and threads != self.threads:
            self.close()
        if self.pool is None:
            self.pool = ProcessPoolExecutor(
                1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.slot.env, threads),
            )
            self.threads = threads
        future = self.pool.submit(run_job, dict(job.config), str(run_dir.path), self.runtime)
        try:
            return future.result()
        except BrokenProcessPool:
            self.close()
            error = "the worker process died without a result (killed, os._exit or a crash)"
            record_failure(run_dir, error, "", kind="crashed")
            return Outcome.failed(error)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None


def run_local(
    jobs: Sequence[Job], runs_dir: Path, slots: Sequence[Slot], runtime: Runtime, event: Event
) -> None:
    """Run `jobs` on the slots of their device, each slot taking the next job when it is free;
    `event` is called with ('start' | 'end', job, slot name, outcome, seconds) from the slot
    threads."""
    todo: dict[str, queue.Queue[Job]] = {"cpu": queue.Queue(), "cuda": queue.Queue()}
    for job in jobs:
        todo[device_of(job)].put(job)

    def serve(slot: Slot) -> None:
        worker = Worker(slot, runtime)
        try:
            while True:
                try:
                    job = todo[slot.device].get_nowait()
                except queue.Empty:
                    return
                event("start", job, slot.name, None, 0.0)
                started = time.perf_counter()
                outcome = worker.run(job, RunDir.of(job.id, runs_dir))
                event("end", job, slot.name, outcome, time.perf_counter() - started)
        finally:
            worker.close()

    threads = [threading.Thread(target=serve, args=(s,), daemon=True) for s in slots]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def launch_local(
    jobs: Sequence[Job],
    runs_dir: Path,
    runtime: Runtime,
    retry_failed: bool = False,
    echo: Callable[[str], None] = print,
    workers: int = 1,
    jobs_per_gpu: int = 1,
    console: Console | None = None,
    store: RecordStore | None = None,
) -> LaunchSummary:
    """Run every job that is not done (and not failed, unless retry_failed) on this machine
    (a job with a committed record in `store` counts as finished):
    cuda jobs `jobs_per_gpu` per GPU, cpu jobs on `workers` CPU workers, each job with its
    own config's thread count. A cuda job without a visible GPU, or a job over several
    devices, stops the launch before any run starts."""
    todo = pending(jobs, runs_dir, retry_failed, store)
    where = f"grid {runtime.group}" if runtime.group else "launch"
    require_one_device(todo, where)
    require_gpu(todo, where)
    check_checkpoints(todo, runs_dir)
    check_data(todo, runtime)
    summary = LaunchSummary(total=len(jobs), skipped=len(jobs) - len(todo))
    slots = plan_slots(todo, workers, jobs_per_gpu)
    echo(
        f"{summary.skipped} of {len(jobs)} runs already finished; {len(todo)} to run on "
        f"{len(slots)} slot{'s' * (len(slots) > 1)} ({', '.join(s.name for s in slots)})."
    )
    view = LaunchView(console or Console(highlight=False), len(todo), len(slots))

    def event(kind: str, job: Job, slot: str, outcome: Outcome | None, seconds: float) -> None:
        view.event(kind, job, slot, outcome, seconds)
        if kind == "end":
            summary.add(job, outcome)

    started = time.perf_counter()
    with view:
        run_local(todo, runs_dir, slots, runtime, event)
    if todo:
        wall, busy = time.perf_counter() - started, sum(view.durations)
        echo(
            f"{len(todo)} runs in {wall:.0f} s on {len(slots)} slot(s); their own times sum "
            f"to {busy:.0f} s, so the grid took {wall / (busy / len(slots)):.2f}× "
            "Σ/slots."
        )
    return summary
