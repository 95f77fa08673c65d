"""A launch within a time window (`regbench launch --window SECONDS`): only the jobs whose
estimated time fits are started, so a borrowed machine's window never ends with a run cut
short and its time lost.

Each job's seconds come from the cost estimator (plan/cost.py, calibrated on this device). The
jobs are placed longest first, each on the least-loaded slot where it still ends inside the
window; with k jobs sharing one GPU each is assumed to run k times slower (no gain from
sharing is assumed unless measured), so the packing never relies on an optimistic overlap.
A job without an estimate is not started: its cost is unknown, so it cannot be said to fit.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from regbench.plan.cost import estimate
from regbench.plan.jobs import Job


@dataclass
class Window:
    """The jobs a window starts, and the ones it leaves with the reason."""

    started: list[Job] = field(default_factory=list)
    left: list[tuple[Job, str]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # job id → its estimate


def fit(
    jobs: Sequence[Job],
    seconds: dict[str, float | None],
    slots: int,
    window: float,
    slowdown: float = 1.0,
) -> Window:
    """Longest first onto the least-loaded of `slots`, each job taking its estimate ×
    `slowdown`; a job that would end after `window` seconds, or has no estimate, waits."""
    out, loads = Window(), [(0.0, slot) for slot in range(max(1, slots))]
    known = [j for j in jobs if seconds.get(j.id) is not None]
    out.left = [(j, "no estimate on this device") for j in jobs if seconds.get(j.id) is None]
    for job in sorted(known, key=lambda j: -seconds[j.id]):
        cost = seconds[job.id] * slowdown
        load, slot = loads[0]
        if load + cost > window:
            out.left.append((job, f"needs ≈ {cost:.0f} s, {window - load:.0f} s left"))
            continue
        heapq.heapreplace(loads, (load + cost, slot))
        out.started.append(job)
        out.seconds[job.id] = cost
    return out


def within_window(
    jobs: Sequence[Job],
    device: str,
    done: Collection[str],
    slots: int,
    window: float,
    jobs_per_slot_device: int = 1,
) -> Window:
    """The jobs of `jobs` (not in `done`) that fit `window` seconds on `slots` slots of
    `device` (a calibration name: cpu, cuda-nvidia-h200, …)."""
    todo = [j for j in jobs if j.id not in done]
    costs = estimate(todo, device).costs
    seconds = {c.job.id: (None if c.why else c.seconds) for c in costs}
    return fit(todo, seconds, slots, window, slowdown=float(jobs_per_slot_device))
