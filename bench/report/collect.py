"""Collect a grid's run records and gather each table row's per-seed values.

A row is one task × cell × variant × sweep point. It keeps the raw values of its finished
seeds (test and validation metric at the selected epoch, cost) and counts its failed runs by
kind (error, diverged, crashed) and its pending runs: nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from regbench.plan.jobs import Job
from regbench.run.records import RecordStore, RunRecord
from regbench.run.result import RunResult, metric_value
from regbench.run.rundir import State
from regbench.tasks import get_task

Key = tuple[str, str, str, str]  # task, cell, variant, sweep point


@dataclass(frozen=True)
class Record:
    """One job and its run record (records.py), if it finished or failed; `kind` is a
    failure's kind."""

    job: Job
    state: State
    result: RunResult | None = None
    error: str | None = None
    kind: str | None = None
    run: RunRecord | None = None


def record(job: Job, store: RecordStore) -> Record:
    """The job's record: committed, or made from its run directory (and committed)."""
    return as_record(job, store.get(job.id))


def as_record(job: Job, run: RunRecord | None) -> Record:
    if run is None:
        return Record(job, "pending")
    if run.state == "done":
        return Record(job, "done", result=run.result, run=run)
    failure = run.failure or {}
    return Record(job, "failed", error=failure.get("error"), kind=failure.get("kind"), run=run)


def collect(jobs: Sequence[Job], store: RecordStore) -> list[Record]:
    return [record(job, store) for job in jobs]


@dataclass
class Row:
    """One table row's raw values over its seeds (lists aligned with `done_ids`)."""

    task: str
    cell: str
    variant: str
    point: str
    metric: str = ""
    direction: str = ""
    references: dict[str, float] = field(default_factory=dict)
    job_ids: list[str] = field(default_factory=list)
    done_ids: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    test: list[float] = field(default_factory=list)
    val: list[float] = field(default_factory=list)
    train_time_s: list[float] = field(default_factory=list)
    wall_time_s: list[float] = field(default_factory=list)
    tokens_per_s: list[float] = field(default_factory=list)
    sequences_per_s: list[float] = field(default_factory=list)
    peak_memory_bytes: list[float] = field(default_factory=list)
    memory_kind: str = ""  # "gpu" (torch allocated) or "cpu" (process peak RSS)
    num_parameters: int | None = None
    failures: dict[str, int] = field(default_factory=dict)
    pending: int = 0

    @property
    def key(self) -> Key:
        return (self.task, self.cell, self.variant, self.point)

    @property
    def n(self) -> int:
        return len(self.test)

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def add(self, rec: Record) -> None:
        self.job_ids.append(rec.job.id)
        if rec.state == "failed":
            kind = rec.kind or "error"
            self.failures[kind] = self.failures.get(kind, 0) + 1
        elif rec.state == "pending":
            self.pending += 1
        else:
            self._add_result(rec.job, rec.result or {})

    def _add_result(self, job: Job, r: RunResult) -> None:
        self.references = dict(r.get("references", {}))
        self.done_ids.append(job.id)
        self.seeds.append(job.seed)
        self.test.append(float(metric_value(r)))
        self.val.append(float(metric_value(r, "val")))
        self.train_time_s.append(float(r["train_time_s"]))
        self.wall_time_s.append(float(r.get("wall_time_s", r["train_time_s"])))
        self.tokens_per_s.append(float(r["tokens_per_s"]))
        self.sequences_per_s.append(float(r.get("sequences_per_s", float("nan"))))
        self.num_parameters = r["num_parameters"]
        memory = r.get("peak_memory_bytes") or {}
        if memory.get("gpu_allocated") is not None:
            self.memory_kind, peak = "gpu", memory["gpu_allocated"]
        else:
            self.memory_kind, peak = "cpu", memory.get("cpu_rss")
        self.peak_memory_bytes.append(float("nan") if peak is None else float(peak))

    def to_dict(self) -> dict[str, Any]:
        """The raw values, under the names results.json uses (`run_ids`: every job id)."""
        d = asdict(self)
        d["run_ids"] = d.pop("job_ids")
        d["test_values"] = d.pop("test")
        d["val_values"] = d.pop("val")
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Row:
        """A row from results.json (also one written before the cost lists were kept)."""
        names = set(cls.__dataclass_fields__)
        kwargs = {k: v for k, v in d.items() if k in names and k not in ("failures", "pending")}
        kwargs["job_ids"] = list(d.get("run_ids", []))
        kwargs["test"] = list(d.get("test_values", []))
        kwargs["val"] = list(d.get("val_values", []))
        if "done_ids" not in d and len(kwargs["test"]) == len(kwargs["job_ids"]):
            kwargs["done_ids"] = list(kwargs["job_ids"])
        failures = d.get("failures")
        if failures is None:  # an older results.json: one count
            failures = {"error": d["failed"]} if d.get("failed") else {}
        return cls(**kwargs, failures=dict(failures), pending=int(d.get("pending", 0)))


def aggregate(records: Iterable[Record]) -> list[Row]:
    """Rows in the grid's order, one per task × cell × variant × sweep point."""
    rows: dict[Key, Row] = {}
    for rec in records:
        key = rec.job.row_key
        if key not in rows:
            protocol = get_task(key[0]).protocol
            rows[key] = Row(*key, metric=protocol.metric, direction=protocol.direction)
        rows[key].add(rec)
    return list(rows.values())


def row_from_records(ids: Sequence[str], store: RecordStore, point: str) -> Row | None:
    """The row that the records `ids` make (an earlier config's runs), or None when none of
    them is kept."""
    runs = [run for run_id in ids if (run := store.get(run_id)) is not None]
    rows = aggregate(as_record(Job(run.config, point), run) for run in runs)
    return rows[0] if len(rows) == 1 else None
