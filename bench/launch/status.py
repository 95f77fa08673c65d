"""What a grid's run directories say: done / pending / failed (by kind), and the cost left.

The estimate of a pending run is the mean wall time of the finished runs of the same table
row (task × cell × variant × sweep point), else of the same task × cell × variant; runs
with neither are counted as unknown.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from statistics import mean

from rich.console import Console

from regbench.plan.jobs import Job
from regbench.run.records import RecordStore, job_state, lookup
from regbench.run.rundir import RunDir


def state_of(job: Job, runs_dir: Path, store: RecordStore | None = None) -> str:
    """done, pending, running (locked by a live process), or failed:<kind>; a committed
    record counts as its run (records.job_state)."""
    state = job_state(job, runs_dir, store)
    run = RunDir.of(job.id, runs_dir)
    if state != "done" and run.state() == "pending" and run.holder() is not None:
        return "running"
    if state == "failed":
        record = lookup(job, runs_dir, store)
        failure = (record.failure if record is not None else None) or {}
        return f"failed:{failure.get('kind', 'error')}"
    return state


def _wall_time(job: Job, runs_dir: Path, store: RecordStore | None) -> float | None:
    record = lookup(job, runs_dir, store)
    return record.result["wall_time_s"] if record is not None and record.result else None


def remaining_seconds(
    jobs: Sequence[Job], runs_dir: Path, store: RecordStore | None = None
) -> tuple[float, int]:
    """Estimated seconds of the unfinished jobs, and how many have no estimate."""
    times: dict[tuple, list[float]] = defaultdict(list)
    left = []
    for job in jobs:
        seconds = _wall_time(job, runs_dir, store)
        if seconds is None:
            left.append(job)
            continue
        times[job.row_key].append(seconds)
        times[job.row_key[:3]].append(seconds)
    total, unknown = 0.0, 0
    for job in left:
        known = times.get(job.row_key) or times.get(job.row_key[:3])
        if known:
            total += mean(known)
        else:
            unknown += 1
    return total, unknown


def report(
    console: Console,
    name: str,
    jobs: Sequence[Job],
    runs_dir: Path,
    verbose: bool,
    workers: int = 1,
    store: RecordStore | None = None,
) -> dict[str, str]:
    """Print the grid's counts (each run's state with `verbose`) and the cost left; the state
    of each job, by id."""
    by_job = {job.id: state_of(job, runs_dir, store) for job in jobs}
    states = Counter(by_job.values())
    if verbose:
        for job in jobs:
            console.print(f"  {by_job[job.id]:16} {job.id}  {job.label}")
    failed = {k.split(":")[1]: v for k, v in states.items() if k.startswith("failed")}
    failed_text = ", ".join(f"{v} {k}" for k, v in sorted(failed.items())) or "0"
    console.print(
        f"grid {name}: {len(jobs)} runs — {states['done']} done, "
        f"{states['running']} running, {states['pending']} pending, "
        f"failed {failed_text} ({runs_dir})"
    )
    seconds, unknown = remaining_seconds(jobs, runs_dir, store)
    left = len(jobs) - states["done"]
    if left and unknown == left:
        console.print(f"cost left: {left} runs; no estimate yet (no finished run of these cells)")
    elif left:
        estimate = f"≈ {seconds / 60 / max(workers, 1):.1f} min with {workers} worker(s)"
        note = f" plus {unknown} runs without an estimate yet" if unknown else ""
        console.print(f"cost left: {left} runs, {estimate}{note}")
    return by_job
