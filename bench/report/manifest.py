"""manifest.json: what a report was made from, so that a table can be cited and checked.

    project      name, version, the commit (and dirty flag) the report was written at
    generated    date and time, the command
    grid         name, file, SHA-256 of the grid file
    packages     versions in the environment that wrote the report
    runs         the commits, package versions and hardware the finished runs recorded
    rows         per table row: job ids and full config hashes, the versions in its config
                 (config["versions"], config["task"]["version"]), its config without the
                 seed, its state counts, and why it is stale (if it is)

The next report in the same folder compares the grid's current expansion with `rows` to
find stale rows (stale.py).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from regbench.plan.grid import Grid
from regbench.plan.jobs import Job, config_hash
from regbench.report.collect import Row
from regbench.report.stale import MANIFEST, Stale, row_config
from regbench.run.provenance import SOURCE, code_version, now, package_versions
from regbench.run.records import RecordStore

SCHEMA = 2  # 2: `cells` renamed `rows`
HARDWARE_KEYS = ("cpu", "cpu_count", "gpu", "cuda", "platform")


REPORT_PACKAGES = ("scipy", "matplotlib")


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def report_packages() -> dict[str, str | None]:
    """The packages of the environment that wrote the report, statistics and plots included."""
    return {**package_versions(), **{name: _version(name) for name in REPORT_PACKAGES}}


def row_entry(row: Row, jobs: Sequence[Job], stale: Stale | None, store: RecordStore) -> dict:
    config = jobs[0].config
    return {
        "task": row.task,
        "cell": row.cell,
        "variant": row.variant,
        "point": row.point,
        "job_ids": [j.id for j in jobs],
        "config_hashes": [config_hash(j.config) for j in jobs],
        "seeds": [j.seed for j in jobs],
        "versions": config["versions"],
        "task_version": config["task"]["version"],
        "config": row_config(config),
        "state": {"done": row.n, "failed": dict(row.failures), "pending": row.pending},
        "trained_at": sorted(run_commits(row.done_ids, store)),
        "stale": stale.to_dict() if stale else None,
    }


def _provenances(ids: Iterable[str], store: RecordStore) -> list[dict[str, Any]]:
    return [run.provenance for i in ids if (run := store.get(i)) is not None and run.provenance]


def _commit(prov: Mapping[str, Any]) -> str:
    code = prov.get("code", {})
    return f"{code.get('commit') or 'unknown'}{' (dirty)' if code.get('dirty') else ''}"


def run_commits(ids: Iterable[str], store: RecordStore) -> set[str]:
    return {_commit(p) for p in _provenances(ids, store)}


def run_environment(ids: Iterable[str], store: RecordStore) -> dict[str, Any]:
    """The distinct commits, package versions and hardware in the runs' provenance."""
    provs = _provenances(ids, store)
    packages: dict[str, set[str]] = {}
    hardware: list[dict[str, Any]] = []
    for prov in provs:
        for name, version in prov.get("packages", {}).items():
            packages.setdefault(name, set()).add(str(version))
        hw = {k: prov["hardware"][k] for k in HARDWARE_KEYS if k in prov.get("hardware", {})}
        if hw not in hardware:
            hardware.append(hw)
    return {
        "count": len(provs),
        "commits": sorted({_commit(p) for p in provs}),
        "packages": {k: sorted(v) for k, v in sorted(packages.items())},
        "hardware": hardware,
    }


def source_dirty() -> bool | None:
    """Uncommitted changes to tracked files outside results/ (a report rewriting results/
    does not make the code dirty); None without a git checkout."""
    try:
        out = subprocess.run(
            ["git", "-C", str(SOURCE), "status", "--porcelain", "--untracked-files=no", "--",
             ":(top)", ":(top,exclude)results"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


def build_manifest(
    grid: Grid,
    rows: Sequence[dict[str, Any]],
    run_ids: Iterable[str],
    store: RecordStore,
    command: str,
    superseded: int = 0,
) -> dict[str, Any]:
    """The manifest; `superseded`: records in records/ that no row, search or stale row uses
    (configurations the grid no longer runs)."""
    code = code_version()
    return {
        "schema": SCHEMA,
        "project": {
            "name": "regbench",
            "version": _version("regbench") or "unknown",
            "commit": code["commit"],
            "dirty": source_dirty() if code["commit"] else None,
        },
        "generated": now(),
        "command": command,
        "grid": {"name": grid.name, "file": grid.path.name, "sha256": grid.file_hash()},
        "packages": report_packages(),
        "runs": run_environment(run_ids, store) | {"superseded": superseded},
        "rows": list(rows),
    }


def write_manifest(manifest: Mapping[str, Any], out_dir: Path) -> Path:
    path = out_dir / MANIFEST
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path
