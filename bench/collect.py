"""Collect a grid's run directories and aggregate seeds into table rows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from regbench.jobs import Job
from regbench.rundir import State, read_json
from regbench.tasks import get_task


@dataclass(frozen=True)
class Record:
    """One job and what its run directory holds."""

    job: Job
    state: State
    result: dict[str, Any] | None = None
    error: str | None = None


def collect(jobs: Sequence[Job], runs_dir: Path) -> list[Record]:
    records = []
    for job in jobs:
        run = job.run_dir(runs_dir)
        state = run.state()
        if state == "done":
            records.append(Record(job, state, result=read_json(run.result)))
        elif state == "failed":
            records.append(Record(job, state, error=read_json(run.failed)["error"]))
        else:
            records.append(Record(job, state))
    return records


@dataclass
class Row:
    """One table row: a task × cell × variant × sweep point, aggregated over seeds."""

    task: str
    cell: str
    variant: str
    point: str
    metric: str = ""
    direction: str = ""
    references: dict[str, float] = field(default_factory=dict)
    test: list[float] = field(default_factory=list)
    val: list[float] = field(default_factory=list)
    train_time_s: list[float] = field(default_factory=list)
    tokens_per_s: list[float] = field(default_factory=list)
    num_parameters: int | None = None
    seeds: list[int] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    failed: int = 0
    pending: int = 0

    @property
    def n(self) -> int:
        return len(self.test)

    def add(self, record: Record) -> None:
        self.run_ids.append(record.job.id)
        if record.state != "done":
            self.failed += record.state == "failed"
            self.pending += record.state == "pending"
            return
        r = record.result
        self.references = r.get("references", {})
        self.test.append(r["test"][r["metric"]])
        self.val.append(r["val"][r["metric"]])
        self.train_time_s.append(r["train_time_s"])
        self.tokens_per_s.append(r["tokens_per_s"])
        self.num_parameters = r["num_parameters"]
        self.seeds.append(record.job.seed)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; NaN for fewer than 2 values)."""
    if not values:
        return math.nan, math.nan
    arr = np.asarray(values, dtype=float)
    std = float(arr.std(ddof=1)) if len(arr) > 1 else math.nan
    return float(arr.mean()), std


def aggregate(records: Sequence[Record]) -> list[Row]:
    """Rows in the grid's order, one per task × cell × variant × sweep point."""
    rows: dict[tuple[str, str, str, str], Row] = {}
    for record in records:
        key = record.job.cell_key
        if key not in rows:
            protocol = get_task(key[0]).protocol
            rows[key] = Row(*key, metric=protocol.metric, direction=protocol.direction)
        rows[key].add(record)
    return list(rows.values())
