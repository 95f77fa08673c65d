"""A grid's jobs for a launch: every job known now (rows, search, and the tuned rows of the
finished searches), and what `validate` and `launch --dry-run` check of them before anything
runs. The launchers are in local.py and slurm.py (chosen through launchers.py); running one
job is regbench.run.job's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from regbench.plan.grid import Grid, expand, expand_tuned, unique
from regbench.plan.jobs import Job
from regbench.run.job import check_checkpoints, check_data, pending
from regbench.run.records import RecordStore, lookup
from regbench.run.runtime import Runtime
from regbench.tasks import get_task
from regbench.tasks.sources import data_dir as local_data


def grid_jobs(grid: Grid, runs_dir: Path, store: RecordStore) -> list[Job]:
    """Every job of `grid` known now, each once: the rows' and the search's, and the tuned
    rows of the searches that have finished (records, else run directories, decide)."""
    _, tuned = expand_tuned(grid, lambda job: lookup(job, runs_dir, store))
    return unique([*expand(grid), *tuned])


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
