"""Running one job of a grid, whatever launches it (`regbench run`, the local workers, a SLURM
array task): which jobs are left to run, the checks before any of them starts, the run itself
under the run directory's lock, its failure record, and the tally of the outcomes.

Done jobs are never rerun; failed jobs only when the launcher retries them; an interrupted job
resumes from its last checkpoint. A run directory is locked while a job runs in it, so two
launches of one grid never train the same job at once: the second leaves it alone ('busy').
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regbench.plan.jobs import Job
from regbench.run.callbacks import Diverged
from regbench.run.provenance import now
from regbench.run.records import RecordStore, job_state
from regbench.run.result import Outcome
from regbench.run.rundir import RunDir, UnsafeCheckpoint, write_json_atomic
from regbench.run.runtime import Runtime
from regbench.run.train import build_task, train


def run_job(config: dict[str, Any], run_dir: str, runtime: Runtime) -> Outcome:
    """Train (or resume) one job; a failure is written to failed.json instead of raised (a
    checkpoint that cannot be loaded safely as one line naming it). A job whose run directory
    another process holds is left to it ('busy')."""
    run = RunDir(run_dir)
    if distributed_child():
        return Outcome.done(train(config, run_dir, runtime))
    with run.lock() as held:
        if not held:
            return Outcome.busy()
        if run.state() == "done":
            return Outcome.done(run.read_result())
        try:
            return Outcome.done(train(config, run_dir, runtime))
        except UnsafeCheckpoint as err:  # refused before anything in it ran; kept as evidence
            record_failure(run, str(err), "")
            return Outcome.failed(str(err))
        except Diverged as err:
            record_failure(run, f"diverged: {err}", traceback.format_exc(), kind="diverged")
            return Outcome.failed(f"diverged: {err}")
        except Exception as err:
            error = f"{type(err).__name__}: {err}"
            record_failure(run, error, traceback.format_exc())
            return Outcome.failed(error)


def distributed_child() -> bool:
    """Whether this process is a rank > 0 that Lightning's DDP launched for a running job
    (rank 0 holds the run directory and writes it)."""
    return os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0"


def record_failure(run: RunDir, error: str, trace: str, kind: str = "error") -> None:
    """failed.json: the error, its kind (error, diverged, crashed) and the traceback."""
    write_json_atomic(run.failed, {"error": error, "kind": kind, "traceback": trace, "time": now()})


@dataclass
class LaunchSummary:
    """What one launch did with its jobs: `skipped` were finished before it, the others were
    trained (done), failed (with the error) or left to another process (busy)."""

    total: int
    skipped: int = 0
    done: list[Job] = field(default_factory=list)
    failed: list[tuple[Job, str]] = field(default_factory=list)
    busy: list[Job] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def add(self, job: Job, outcome: Outcome | None) -> None:
        """Count one job's outcome (None: the job ended without one)."""
        if outcome is not None and outcome.state == "done":
            self.done.append(job)
        elif outcome is not None and outcome.state == "busy":
            self.busy.append(job)
        else:
            self.failed.append((job, (outcome.error if outcome else None) or "no result"))

    @classmethod
    def merge(cls, summaries: Sequence[LaunchSummary], total: int) -> LaunchSummary:
        """One summary of several launches over `total` distinct jobs."""
        return cls(
            total=total,
            skipped=sum(s.skipped for s in summaries),
            done=[j for s in summaries for j in s.done],
            failed=[f for s in summaries for f in s.failed],
            busy=[j for s in summaries for j in s.busy],
        )


def pending(
    jobs: Sequence[Job], runs_dir: Path, retry_failed: bool, store: RecordStore | None = None
) -> list[Job]:
    """The jobs to run: neither done in `runs_dir` nor recorded in `store` (the committed
    records), and not failed unless `retry_failed`."""
    wanted = {"pending", "failed"} if retry_failed else {"pending"}
    return [j for j in jobs if job_state(j, runs_dir, store) in wanted]


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
        RunDir.of(job.id, runs_dir).check_checkpoints()
