"""Run records: the compact, committed form of a finished or failed run.

A run directory (rundir.py) lives on the machine that trained it; its record outlives it.
`regbench report` writes one record per finished or failed job of the grid into
`results/<grid>/records/<job id>.json` and builds every table, plot and manifest from the
records alone, so a clone without `runs/` rewrites `results/` identically, and `regbench
launch` counts a job with a committed record as finished (done, or failed until
`--retry-failed`). The format is the same whatever trained the run (CPU, GPU, SLURM):

    schema       the record format's version
    job          the job id: the first 12 hex digits of the config's SHA-256
    state        done or failed
    config       the resolved config (config.json)
    result       result.json (done runs; result.py): metrics at the selected epoch, test, cost
    failure      error and kind (failed runs; the traceback stays in failed.json)
    epochs       metrics.jsonl: one row per epoch
    attempts     attempts.json: attempts, the epochs resumed from, wall time
    provenance   provenance.json: commit, packages, hardware, seeds, command
    sha256       of the canonical JSON of everything above

A record whose checksum, job id or file name disagree, or that is not a record at all, is
refused with one line naming the file: it was damaged or edited by hand.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from regbench.errors import ConfigError
from regbench.plan.jobs import ID_LENGTH, Job, config_hash
from regbench.run.result import RunResult
from regbench.run.rundir import RunDir, read_json, write_json_atomic

SCHEMA = 1
FOLDER = "records"
MAX_BYTES = 4 * 2**20  # a record is a few kB; a larger file is not one
FIELDS = ("schema", "job", "state", "config", "result", "failure", "epochs", "attempts",
          "provenance")  # fmt: skip
RecordState = Literal["done", "failed"]


@dataclass(frozen=True)
class RunRecord:
    """What a finished or failed run left, without checkpoints or logger files."""

    job: str
    state: RecordState
    config: dict[str, Any]
    result: RunResult | None = None
    failure: dict[str, Any] | None = None
    epochs: list[dict[str, Any]] = field(default_factory=list)
    attempts: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "job": self.job,
            "state": self.state,
            "config": self.config,
            "result": self.result,
            "failure": self.failure,
            "epochs": self.epochs,
            "attempts": self.attempts,
            "provenance": self.provenance,
        }

    def to_json(self) -> dict[str, Any]:
        body = self.body()
        return {**body, "sha256": checksum(body)}


def checksum(body: Mapping[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def from_run_dir(run: RunDir) -> RunRecord | None:
    """The record of a done or failed run directory; None for a pending one."""
    try:
        return _from_run_dir(run)
    except (OSError, json.JSONDecodeError):  # a run finishing or retried as we read: pending
        return None


def _from_run_dir(run: RunDir) -> RunRecord | None:
    state = run.state()
    if state == "pending" or not run.config.is_file():
        return None
    config = read_json(run.config)
    job = config_hash(config)[:ID_LENGTH]
    common = {
        "epochs": run.epochs(),
        "attempts": read_json(run.attempts) if run.attempts.is_file() else {},
        "provenance": read_json(run.provenance) if run.provenance.is_file() else {},
    }
    if state == "done":
        return RunRecord(job, "done", config, result=run.read_result(), **common)
    failed = read_json(run.failed)
    failure = {"error": failed.get("error", ""), "kind": failed.get("kind", "error")}
    return RunRecord(job, "failed", config, failure=failure, **common)


def load(path: Path) -> RunRecord:
    """A committed record, checked; a ConfigError naming the file otherwise."""
    data = _read(path)
    missing = [k for k in (*FIELDS, "sha256") if k not in data]
    if missing:
        raise _refused(path, f"missing {', '.join(missing)}")
    if data["schema"] != SCHEMA:
        raise _refused(path, f"record schema {data['schema']!r}, this regbench reads {SCHEMA}")
    body = {k: data[k] for k in FIELDS}
    if data["sha256"] != checksum(body):
        raise _refused(path, "its checksum does not match its content (edited or damaged)")
    if not isinstance(data["config"], dict) or data["state"] not in ("done", "failed"):
        raise _refused(path, "no config or no state done/failed")
    job = config_hash(data["config"])[:ID_LENGTH]
    if data["job"] != job or path.stem != job:
        raise _refused(path, f"its config hashes to job {job}, not {path.stem}")
    if (data["result"] is None) == (data["state"] == "done"):
        raise _refused(path, "a done record needs a result, a failed one none")
    return RunRecord(**{k: data[k] for k in FIELDS if k != "schema"})


def _read(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_BYTES:
            raise _refused(path, f"larger than {MAX_BYTES // 2**20} MiB")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _refused(path, f"unreadable ({type(err).__name__})") from None
    if not isinstance(data, dict):
        raise _refused(path, "not a JSON object")
    return data


def _refused(path: Path, why: str) -> ConfigError:
    return ConfigError(
        f"{path}: not a valid run record: {why}. Restore it (git checkout -- {path}) or "
        "delete it to train the job again."
    )


class RecordStore:
    """The records folder of one grid's results (results/<grid>/records), read and checked
    once. With `runs_dir`, a job without a record is looked up in its run directory there,
    and a finished or failed run found there joins the folder."""

    def __init__(self, folder: Path | str, runs_dir: Path | str | None = None) -> None:
        self.folder = Path(folder)
        self.runs_dir = None if runs_dir is None else Path(runs_dir)
        self._records: dict[str, RunRecord] = {}
        if self.folder.is_dir():
            for path in sorted(self.folder.glob("*.json")):
                record = load(path)
                self._records[record.job] = record

    def get(self, job_id: str) -> RunRecord | None:
        record = self._records.get(job_id)
        if self.runs_dir is None:
            return record
        newest = fresher(record, RunDir(self.runs_dir / job_id))
        if newest is not record and newest is not None:
            self.add(newest)
        return newest

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._records

    def __iter__(self) -> Iterator[RunRecord]:
        return iter(self._records.values())

    def add(self, record: RunRecord) -> None:
        """Keep `record` and write it (atomically) unless the same record, or a done one,
        is there: a finished run's record is never replaced."""
        path = self.folder / f"{record.job}.json"
        if path.is_file():  # as it is now: another report may have written it since
            self._records[record.job] = load(path)
        kept = self._records.get(record.job)
        if kept == record or (kept is not None and kept.state == "done"):
            return
        self._records[record.job] = record
        write_json_atomic(path, record.to_json())

    def state(self, job_id: str) -> RecordState | None:
        record = self._records.get(job_id)
        return None if record is None else record.state


def fresher(recorded: RunRecord | None, run: RunDir) -> RunRecord | None:
    """A job's record: a done record stands; otherwise what its run directory holds now (a
    retry that finished, or failed again), else the record."""
    if recorded is not None and recorded.state == "done":
        return recorded
    return from_run_dir(run) or recorded


def lookup(job: Job, runs_dir: Path, store: RecordStore | None = None) -> RunRecord | None:
    """The job's record, as `fresher` decides, without writing it to the store."""
    return fresher(store.get(job.id) if store is not None else None, RunDir.of(job.id, runs_dir))


def job_state(job: Job, runs_dir: Path, store: RecordStore | None = None) -> str:
    """done, failed or pending: the state of the record `lookup` would give, read from the
    markers alone (no record is built)."""
    recorded = store.state(job.id) if store is not None else None
    if recorded == "done":
        return "done"
    state = RunDir.of(job.id, runs_dir).state()
    return state if state != "pending" else (recorded or "pending")


def thread_mismatches(store: RecordStore) -> list[str]:
    """Ids of records whose run used another CPU thread count than its config's
    `execution.threads` (runs launched before that key, with more threads than one)."""
    out = []
    for record in store:
        used = record.provenance.get("hardware", {}).get("torch_threads")
        wanted = record.config.get("execution", {}).get("threads", 1)
        if (
            used is not None
            and used != wanted
            and record.config.get("execution", {}).get("device", "cpu") == "cpu"
        ):
            out.append(record.job)
    return sorted(out)


def store_for(out_dir: Path | str, runs_dir: Path | str | None = None) -> RecordStore:
    """The record store of a grid's results folder (see RecordStore for `runs_dir`)."""
    return RecordStore(Path(out_dir) / FOLDER, runs_dir)
