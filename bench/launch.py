"""Run a grid's jobs that are not done yet, one after another, in a worker process.

The worker is a spawned process that lives across jobs (torch and Lightning are imported
once); a job that raises is recorded in its run directory's failed.json and the grid goes on;
a worker that dies (os._exit, a signal) is recorded the same way and replaced. Done jobs are
never rerun; failed jobs only with `retry_failed`.
"""

from __future__ import annotations

import json
import multiprocessing
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regbench.jobs import Job
from regbench.provenance import now
from regbench.rundir import RunDir, write_json_atomic
from regbench.train import Runtime, build_task, train


def run_job(config: dict[str, Any], run_dir: str, runtime: Runtime) -> dict[str, Any]:
    """Train one job; a failure is written to failed.json instead of raised."""
    try:
        return {"state": "done", "result": train(config, run_dir, runtime)}
    except Exception as err:
        error = f"{type(err).__name__}: {err}"
        record_failure(RunDir(run_dir), error, traceback.format_exc())
        return {"state": "failed", "error": error}


def record_failure(run: RunDir, error: str, trace: str) -> None:
    write_json_atomic(run.failed, {"error": error, "traceback": trace, "time": now()})


@dataclass
class Summary:
    total: int
    skipped: int = 0
    done: list[Job] = field(default_factory=list)
    failed: list[tuple[Job, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def pending(jobs: Sequence[Job], runs_dir: Path, retry_failed: bool) -> list[Job]:
    wanted = {"pending", "failed"} if retry_failed else {"pending"}
    return [j for j in jobs if j.run_dir(runs_dir).state() in wanted]


class Worker:
    """One spawned process that runs jobs in turn, replaced if it dies."""

    def __init__(self) -> None:
        self.pool: ProcessPoolExecutor | None = None

    def run(self, job: Job, run_dir: RunDir, runtime: Runtime) -> dict[str, Any]:
        if self.pool is None:
            self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        future = self.pool.submit(run_job, dict(job.config), str(run_dir.path), runtime)
        try:
            return future.result()
        except BrokenProcessPool:
            self.close()
            error = "the worker process died without a result (killed, os._exit or a crash)"
            record_failure(run_dir, error, "")
            return {"state": "failed", "error": error}

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None


def check_data(jobs: Sequence[Job], runtime: Runtime, echo: Callable[[str], None]) -> None:
    """Check (and cache) every distinct task's data before any run starts: a missing or
    corrupted file stops the launch with a DataError naming it."""
    seen = set()
    for job in jobs:
        task = job.config["task"]
        key = json.dumps(task, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        build_task(job.config, runtime.data_dir).prepare_data()


def launch(
    jobs: Sequence[Job],
    runs_dir: Path,
    runtime: Runtime,
    retry_failed: bool = False,
    echo: Callable[[str], None] = print,
) -> Summary:
    """Run every job of `jobs` that is not done (and not failed, unless retry_failed)."""
    todo = pending(jobs, runs_dir, retry_failed)
    check_data(todo, runtime, echo)
    summary = Summary(total=len(jobs), skipped=len(jobs) - len(todo))
    echo(f"{summary.skipped} of {len(jobs)} runs already finished; {len(todo)} to run.")
    worker = Worker()
    try:
        for i, job in enumerate(todo, 1):
            started = time.perf_counter()
            outcome = worker.run(job, job.run_dir(runs_dir), runtime)
            seconds = time.perf_counter() - started
            echo(
                f"[{i}/{len(todo)}] {job.label} ({job.id}): {_describe(outcome)} in {seconds:.1f} s"
            )
            if outcome["state"] == "done":
                summary.done.append(job)
            else:
                summary.failed.append((job, outcome["error"]))
    finally:
        worker.close()
    return summary


def _describe(outcome: dict[str, Any]) -> str:
    if outcome["state"] != "done":
        return f"FAILED ({outcome['error']})"
    r = outcome["result"]
    return f"test {r['metric']} {r['test'][r['metric']]:.4g} (best epoch {r['best_epoch']})"
