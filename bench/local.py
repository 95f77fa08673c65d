"""The local launcher's workers: one slot per GPU (or several per GPU), or N CPU workers.

Each slot owns one spawned worker process that runs jobs in turn (torch and Lightning are
imported once per worker); the slot's environment (CUDA_VISIBLE_DEVICES) and torch thread
count are set in the worker before it touches a device. A worker dies with the launcher
(PR_SET_PDEATHSIG), so a killed launch leaves no orphan training a job; a worker that dies
on its own (os._exit, a signal, out of memory) is recorded as the job's failure and replaced.
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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from regbench.jobs import Job
from regbench.rundir import RunDir
from regbench.runtime import Runtime

Event = Callable[[str, Job, str, dict[str, Any] | None, float], None]


@dataclass(frozen=True)
class Slot:
    name: str
    env: dict[str, str]
    runtime: Runtime


def cuda_devices(runtime: Runtime) -> int:
    if runtime.accelerator == "cpu":
        return 0
    import torch

    return torch.cuda.device_count()


def plan_slots(runtime: Runtime, workers: int = 1, jobs_per_gpu: int = 1) -> list[Slot]:
    """`jobs_per_gpu` slots per visible GPU, else `workers` CPU slots; CPU threads are divided
    between the slots (small RNNs underuse a big GPU, so several jobs may share one)."""
    cores = os.cpu_count() or 1
    gpus = cuda_devices(runtime)
    if gpus:
        count = gpus * jobs_per_gpu
        threads = runtime.threads or max(1, cores // count)
        return [
            Slot(
                f"gpu{g}/{k}",
                {"CUDA_VISIBLE_DEVICES": str(g)},
                replace(runtime, accelerator="gpu", devices=1, threads=threads),
            )
            for g in range(gpus)
            for k in range(jobs_per_gpu)
        ]
    threads = runtime.threads or max(1, cores // workers)
    return [
        Slot(
            f"cpu{i}",
            {"CUDA_VISIBLE_DEVICES": ""},
            replace(runtime, accelerator="cpu", threads=threads),
        )
        for i in range(workers)
    ]


def _init_worker(env: dict[str, str], threads: int) -> None:
    """In the worker, before anything touches a device: its slot's environment, its thread
    count, and death with the launcher."""
    os.environ.update(env)
    os.environ.pop("WANDB_SERVICE", None)  # start our own W&B service, not the launcher's
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Worker:
    """One spawned process running the jobs of one slot, replaced if it dies."""

    def __init__(self, slot: Slot) -> None:
        self.slot = slot
        self.pool: ProcessPoolExecutor | None = None

    def run(self, job: Job, run_dir: RunDir) -> dict[str, Any]:
        from regbench.launch import record_failure, run_job

        if self.pool is None:
            self.pool = ProcessPoolExecutor(
                1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.slot.env, self.slot.runtime.threads),
            )
        future = self.pool.submit(run_job, dict(job.config), str(run_dir.path), self.slot.runtime)
        try:
            return future.result()
        except BrokenProcessPool:
            self.close()
            error = "the worker process died without a result (killed, os._exit or a crash)"
            record_failure(run_dir, error, "", kind="crashed")
            return {"state": "failed", "error": error}

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None


def run_local(jobs: Sequence[Job], runs_dir: Path, slots: Sequence[Slot], event: Event) -> None:
    """Run `jobs` on the slots, each slot taking the next job when it is free; `event` is
    called with ('start' | 'end', job, slot name, outcome, seconds) from the slot threads."""
    todo: queue.Queue[Job] = queue.Queue()
    for job in jobs:
        todo.put(job)

    def serve(slot: Slot) -> None:
        worker = Worker(slot)
        try:
            while True:
                try:
                    job = todo.get_nowait()
                except queue.Empty:
                    return
                event("start", job, slot.name, None, 0.0)
                started = time.perf_counter()
                outcome = worker.run(job, job.run_dir(runs_dir))
                event("end", job, slot.name, outcome, time.perf_counter() - started)
        finally:
            worker.close()

    threads = [threading.Thread(target=serve, args=(s,), daemon=True) for s in slots]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
