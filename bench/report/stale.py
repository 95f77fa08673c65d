"""Stale rows: a row whose jobs changed since the previous report in the same folder.

Job ids are hashes of the resolved config, so a bumped task, variant, model or harness
version, or a changed hyperparameter, gives a row new job ids. The report compares the grid's
current expansion with the previous report's manifest: a row whose config changed and whose
new jobs have not all run yet is **stale**. Its previous numbers stay in the table, marked,
with the config keys that changed, until the new jobs have run (`regbench launch` runs only
those: the other job ids are done).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regbench.plan.config import flatten
from regbench.plan.jobs import identity
from regbench.report.collect import Key, Row, row_from_records
from regbench.run.records import RecordStore
from regbench.run.rundir import read_json

MANIFEST = "manifest.json"
UNRECORDED = "no run records: reported before records were kept; `regbench launch` reruns them"
RESULTS = "results.json"


def manifest_rows(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A manifest's per-row entries (`rows`; schema 1 called them `cells`)."""
    return manifest["rows"] if "rows" in manifest else manifest["cells"]


@dataclass(frozen=True)
class Stale:
    """Why a row is stale, and which earlier runs its shown numbers come from."""

    changes: tuple[str, ...]
    previous_ids: tuple[str, ...]
    previous_config: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "changes": list(self.changes),
            "previous_ids": list(self.previous_ids),
            "previous_config": self.previous_config,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Stale | None:
        if not d:
            return None
        return cls(tuple(d["changes"]), tuple(d["previous_ids"]), d.get("previous_config"))


@dataclass(frozen=True)
class Previous:
    """One row of the previous report: its jobs, config, numbers and stale state."""

    job_ids: tuple[str, ...]
    config: dict[str, Any] | None
    row: dict[str, Any] | None
    stale: Stale | None = None
    shown: dict[str, Any] | None = None  # the earlier numbers a stale row showed


def row_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A job's config identity (jobs.identity) without its seed: what every seed of a table
    row shares (seeds pinned to another value than the row's seed are kept)."""
    out = identity(config)  # options added later are left out at their neutral value
    seed = out.pop("seed", None)
    out["seeds"] = {k: v for k, v in out.get("seeds", {}).items() if v != seed}
    return out


def _key(d: Mapping[str, Any]) -> Key:
    return (d["task"], d["cell"], d["variant"], d.get("point", ""))


def read_previous(out_dir: Path, store: RecordStore, grid: str) -> dict[Key, Previous]:
    """The previous report of grid `grid` in `out_dir`: its manifest.json and results.json,
    or results.json alone (a report written before manifests; configs then come from the
    run records). A report of another grid there is no previous report."""
    results, manifest = out_dir / RESULTS, out_dir / MANIFEST
    data = read_json(results) if results.is_file() else {"grid": grid, "rows": []}
    if data.get("grid") != grid:
        return {}
    rows = {_key(r): r for r in data["rows"]}
    if manifest.is_file():
        return {
            _key(c): Previous(
                tuple(c["job_ids"]),
                c.get("config"),
                rows.get(_key(c)),
                Stale.from_dict(c.get("stale")),
                (rows.get(_key(c)) or {}).get("stale_row"),
            )
            for c in manifest_rows(read_json(manifest))
        }
    return {
        key: Previous(tuple(r["run_ids"]), _config_of_runs(r["run_ids"], store), r)
        for key, r in rows.items()
    }


def _config_of_runs(ids: Sequence[str], store: RecordStore) -> dict[str, Any] | None:
    for run_id in ids:
        run = store.get(run_id)
        if run is not None:
            return row_config(run.config)
    return None


def config_changes(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> tuple[str, ...]:
    """The dotted keys whose value differs, versions first: `key: old → new` (– if absent)."""
    if old is None:
        return ("config not recorded by the previous report",)
    a, b = flatten(old), flatten(new)
    keys = sorted(
        set(a) | set(b), key=lambda k: (not k.startswith(("versions", "task.version")), k)
    )
    return tuple(
        f"{k}: {_show(a.get(k, '–'))} → {_show(b.get(k, '–'))}"
        for k in keys
        if a.get(k, "–") != b.get(k, "–")
    )


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def assess(
    row: Row, config: Mapping[str, Any], prev: Previous | None, store: RecordStore
) -> tuple[Stale | None, Row | None]:
    """Whether `row` is stale against the previous report, and the earlier row to show
    (None when no earlier run finished). A row stops being stale once none of its current
    jobs is pending."""
    if prev is None or row.pending == 0:
        return None, None
    unrecorded = _unrecorded(row, prev, store)
    if unrecorded is not None:
        return unrecorded
    current = row_config(config)
    if prev.stale is not None:  # still showing numbers from an older config
        stale = Stale(
            config_changes(prev.stale.previous_config, current),
            prev.stale.previous_ids,
            prev.stale.previous_config,
        )
        if stale.changes:
            return stale, _earlier(stale.previous_ids, prev.shown, store, row.point)
        return None, None
    if tuple(row.job_ids) == prev.job_ids:
        return None, None
    changes = config_changes(prev.config, current)
    if not changes:  # only the seed list changed: the shared runs are still valid
        return None, None
    stale = Stale(changes, prev.job_ids, prev.config)
    return stale, _earlier(prev.job_ids, prev.row, store, row.point)


def _unrecorded(row: Row, prev: Previous, store: RecordStore) -> tuple[Stale, Row] | None:
    """A row whose jobs are the previous report's but have neither a record nor a run
    directory (runs reported before records were kept, on a machine that is gone): the
    previous numbers stay, marked, until the jobs are rerun."""
    if row.n or row.failed:
        return None
    ids = prev.stale.previous_ids if prev.stale is not None else prev.job_ids
    if ids != tuple(row.job_ids):
        return None
    earlier = _earlier(ids, prev.shown if prev.stale is not None else prev.row, store, row.point)
    if earlier is None:
        return None
    config = prev.stale.previous_config if prev.stale is not None else prev.config
    return Stale((UNRECORDED,), ids, config), earlier


def _earlier(
    ids: Sequence[str], stored: Mapping[str, Any] | None, store: RecordStore, point: str
) -> Row | None:
    """The earlier row from its run records if they are kept, else as results.json stored it."""
    row = row_from_records(ids, store, point)
    if row is None and stored is not None:
        row = Row.from_dict(stored)
    return row if row is not None and row.n else None
