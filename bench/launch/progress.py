"""A live view of a launch: done / running / failed / pending and an ETA, with one line per
finished run above it (rich; plain lines when the output is not a terminal)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from regbench.plan.jobs import Job
from regbench.run.result import Outcome

# ('start' | 'end', job, slot name, its outcome (None at the start), seconds it took)
Event = Callable[[str, Job, str, Outcome | None, float], None]


class LaunchView:
    def __init__(self, console: Console, total: int, slots: int) -> None:
        self.console, self.total, self.slots = console, total, slots
        self.done = self.failed = self.running = 0
        self.durations: list[float] = []
        self.lock = threading.Lock()
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )
        self.task = self.progress.add_task(self._status_line(), total=total)

    def __enter__(self) -> LaunchView:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def eta(self) -> str:
        left = self.total - self.done - self.failed
        if not self.durations or not left:
            return "–"
        seconds = sum(self.durations) / len(self.durations) * left / self.slots
        return time.strftime("%H:%M:%S", time.gmtime(seconds))

    def _status_line(self) -> str:
        pending = self.total - self.done - self.failed - self.running
        return (
            f"done {self.done} · running {self.running} · failed {self.failed} · "
            f"pending {pending} · ETA {self.eta()}"
        )

    def event(
        self, kind: str, job: Job, slot: str, outcome: Outcome | None, seconds: float
    ) -> None:
        with self.lock:
            if kind == "start":
                self.running += 1
            else:
                self.running -= 1
                self.durations.append(seconds)
                ok = outcome is not None and outcome.state == "done"
                self.done += ok
                self.failed += not ok
                text = (outcome or Outcome.failed("no result")).describe()
                self.console.print(f"[{slot}] {job.label} ({job.id}): {text} in {seconds:.1f} s")
            self.progress.update(
                self.task, completed=self.done + self.failed, description=self._status_line()
            )
