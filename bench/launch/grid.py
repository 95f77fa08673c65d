"""Launching a grid's unfinished jobs: the job function every launcher runs, its failure
records, the data check before any run starts, and the local launcher (bench/launch/local.py has
its workers, bench/launch/slurm.py the SLURM one).

Done jobs are never rerun; failed jobs only with `retry_failed`; interrupted jobs resume
from their last checkpoint. A run directory is locked while a job runs in it, so two
launches of one grid never train the same job at once.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from regbench.launch.local import plan_slots, run_local
from regbench.launch.progress import LaunchView
from regbench.plan.grid import Grid, expand, expand_tuned, unique
from regbench.plan.jobs import Job
from regbench.run.callbacks import Diverged
from regbench.run.provenance import now
from regbench.run.records import RecordStore, job_state, lookup
from regbench.run.rundir import RunDir, UnsafeCheckpoint, write_json_atomic
from regbench.run.runtime import Runtime, require_gpu, require_one_device
from regbench.run.train import build_task, train
from regbench.tasks import get_task
from regbench.tasks.sources import data_dir as local_data


def run_job(config: dict[str, Any], run_dir: str, runtime: Runtime) -> dict[str, Any]:
    """Train (or resume) one job; a failure is written to failed.json instead of raised (a
    checkpoint that cannot be loaded safely as one line naming it). A job whose run directory
    another process holds is left to it ('busy')."""
    run = RunDir(run_dir)
    if distributed_child():
        return {"state": "done", "result": train(config, run_dir, runtime)}
    with run.lock() as held:
        if not held:
            return {"state": "busy", "error": "another process is running this job"}
        if run.state() == "done":
            return {"state": "done", "result": json.loads(run.result.read_text())}
        try:
            return {"state": "done", "result": train(config, run_dir, runtime)}
        except UnsafeCheckpoint as err:  # refused before anything in it ran; kept as evidence
            record_failure(run, str(err), "")
            return {"state": "failed", "error": str(err)}
        except Diverged as err:
            record_failure(run, f"diverged: {err}", traceback.format_exc(), kind="diverged")
            return {"state": "failed", "error": f"diverged: {err}"}
        except Exception as err:
            error = f"{type(err).__name__}: {err}"
            record_failure(run, error, traceback.format_exc())
            return {"state": "failed", "error": error}


def distributed_child() -> bool:
    """Whether this process is a rank > 0 that Lightning's DDP launched for a running job
    (rank 0 holds the run directory and writes it)."""
    return os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0"


def record_failure(run: RunDir, error: str, trace: str, kind: str = "error") -> None:
    """failed.json: the error, its kind (error, diverged, crashed) and the traceback."""
    write_json_atomic(run.failed, {"error": error, "kind": kind, "traceback": trace, "time": now()})


@dataclass
class Summary:
    total: int
    skipped: int = 0
    done: list[Job] = field(default_factory=list)
    failed: list[tuple[Job, str]] = field(default_factory=list)
    busy: list[Job] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def pending(
    jobs: Sequence[Job], runs_dir: Path, retry_failed: bool, store: RecordStore | None = None
) -> list[Job]:
    """The jobs to run: neither done in `runs_dir` nor recorded in `store` (the committed
    records), and not failed unless `retry_failed`."""
    wanted = {"pending", "failed"} if retry_failed else {"pending"}
    return [j for j in jobs if job_state(j, runs_dir, store) in wanted]


def grid_jobs(grid: Grid, runs_dir: Path, store: RecordStore) -> list[Job]:
    """Every job of `grid` known now, each once: the rows' and the search's, and the tuned
    rows of the searches that have finished (records, else run directories, decide)."""
    _, tuned = expand_tuned(grid, lambda job: lookup(job, runs_dir, store))
    return unique([*expand(grid), *tuned])


def check_data(jobs: Sequence[Job], runtime: Runtime) -> None:
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


def check_checkpoints(jobs: Sequence[Job], runs_dir: Path) -> None:
    """Refuse, before any run starts, a job whose checkpoint would run code when loaded
    (RunDir.check_checkpoints: UnsafeCheckpoint, one line naming it)."""
    for job in jobs:
        job.run_dir(runs_dir).check_checkpoints()


def check_grid_data(
    jobs: Sequence[Job],
    runs_dir: Path,
    store: RecordStore | None,
    data_dir: str | None,
    echo: Callable[[str], None],
    retry_failed: bool = False,
) -> None:
    """What `launch` checks of the data, for `validate` and `launch --dry-run`: the data of
    every task with a job left to run (a DataError naming a bad file), then one line."""
    todo = pending(jobs, runs_dir, retry_failed, store)
    check_checkpoints(todo, runs_dir)
    check_data(todo, Runtime(data_dir=data_dir))
    names = sorted({j.config["task"]["name"] for j in todo})
    if external := [n for n in names if get_task(n).external_data]:
        where = local_data(data_dir) or "the Hugging Face hub"
        echo(f"data of {', '.join(external)}: checked ({where})")


def launch(
    jobs: Sequence[Job],
    runs_dir: Path,
    runtime: Runtime,
    retry_failed: bool = False,
    echo: Callable[[str], None] = print,
    workers: int = 1,
    jobs_per_gpu: int = 1,
    console: Console | None = None,
    store: RecordStore | None = None,
) -> Summary:
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
    summary = Summary(total=len(jobs), skipped=len(jobs) - len(todo))
    slots = plan_slots(todo, workers, jobs_per_gpu)
    echo(
        f"{summary.skipped} of {len(jobs)} runs already finished; {len(todo)} to run on "
        f"{len(slots)} slot{'s' * (len(slots) > 1)} ({', '.join(s.name for s in slots)})."
    )
    view = LaunchView(console or Console(highlight=False), len(todo), len(slots))

    def event(kind: str, job: Job, slot: str, outcome: dict | None, seconds: float) -> None:
        view.event(kind, job, slot, outcome, seconds)
        if kind == "end":
            _count(summary, job, outcome)

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


def _count(summary: Summary, job: Job, outcome: dict | None) -> None:
    if outcome is not None and outcome["state"] == "done":
        summary.done.append(job)
    elif outcome is not None and outcome["state"] == "busy":
        summary.busy.append(job)
    else:
        summary.failed.append((job, (outcome or {}).get("error", "no result")))
