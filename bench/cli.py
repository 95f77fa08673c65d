"""What each subcommand of the `regbench` command does: run, launch, status, validate, report,
index, tasks, variants (`COMMANDS`); their arguments are in arguments.py. Each defers its
imports, so that `regbench --help` stays fast."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from regbench.arguments import DEFAULT_RUNS, moved_flag, parser
from regbench.errors import ConfigError

console = Console(highlight=False, soft_wrap=True)


def _runs_dir(args: argparse.Namespace) -> Path:
    return Path(args.runs_dir or os.environ.get("REGBENCH_RUNS", DEFAULT_RUNS))


def _runtime(args: argparse.Namespace, group: str | None = None) -> Any:
    from regbench.run.runtime import Runtime

    return Runtime(
        progress=getattr(args, "progress", False),
        data_dir=args.data_dir,
        wandb=args.wandb,
        project=args.project,
        group=group,
        command=tuple(sys.argv),
    )


def _parse_set(pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs; values are read as YAML scalars (numbers, booleans, strings)."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set train.lr=0.01.")
        overrides[key] = yaml.safe_load(value)
    return overrides


def cmd_run(args: argparse.Namespace) -> int:
    from regbench.plan.config import resolve
    from regbench.plan.jobs import Job
    from regbench.run.job import check_checkpoints, check_data, distributed_child, run_job
    from regbench.run.rundir import RunDir
    from regbench.run.runtime import require_gpu

    config = resolve(
        args.task, args.variant, args.cell, args.seed, _parse_set(args.set), where="regbench run"
    )
    job = Job(config)
    run = RunDir.of(job.id, _runs_dir(args))
    if distributed_child():  # a DDP rank > 0 that Lightning started: train, say nothing
        run_job(dict(config), str(run.path), _runtime(args))
        return 0
    if run.state() == "done":
        console.print(f"{job.label} is already done: {run.result}")
        return 0
    runtime = _runtime(args)
    require_gpu([job], "regbench run")
    check_checkpoints([job], _runs_dir(args))
    check_data([job], runtime)
    console.print(f"{job.label} → {run.path}")
    outcome = run_job(dict(config), str(run.path), runtime)
    if outcome.state != "done":
        console.print(f"[red]failed[/red]: {outcome.error} (details in {run.failed})")
        return 1
    console.print(f"{outcome.describe(val=True)} → {run.result}")
    return 0


def _grid(args: argparse.Namespace) -> tuple[Any, Any, list[Any]]:
    """The grid, its record store (results/<grid>/records, or --out's) and its known jobs."""
    from regbench.launch.grid import grid_jobs
    from regbench.plan.grid import load_grid
    from regbench.run.records import store_for

    grid = load_grid(args.grid)
    store = store_for(_out(args, grid))
    return grid, store, grid_jobs(grid, _runs_dir(args), store)


def _out(args: argparse.Namespace, grid: Any) -> Path:
    return Path(args.out) if args.out else Path("results") / grid.name


def cmd_status(args: argparse.Namespace) -> int:
    from regbench.launch.grid import check_grid_data
    from regbench.launch.status import report
    from regbench.plan.cost import describe as describe_cost

    grid, store, jobs = _grid(args)
    if args.command != "status":  # validate and launch --dry-run check what launch would
        retry = getattr(args, "retry_failed", False)
        check_grid_data(jobs, _runs_dir(args), store, args.data_dir, console.print, retry)
    workers = getattr(args, "workers", 1)
    states = report(console, grid.name, jobs, _runs_dir(args), args.verbose, workers, store)
    done = {job_id for job_id, state in states.items() if state == "done"}
    for line in describe_cost(jobs, done, workers=workers, grid=grid.name):
        console.print(line)
    return 0


def cmd_launch(args: argparse.Namespace) -> int:
    from regbench.launch.grid import grid_jobs
    from regbench.run.job import LaunchSummary
    from regbench.run.records import job_state

    if args.dry_run:
        args.verbose = True
        return cmd_status(args)
    grid, store, jobs = _grid(args)
    runtime = _runtime(args, group=grid.name)
    runs_dir, seen, summaries = _runs_dir(args), set(), []
    deadline = time.monotonic() + args.window if args.window else None
    while new := [j for j in jobs if j.id not in seen]:  # rows and search, then tuned rows
        seen |= {j.id for j in new}
        if deadline is not None:
            new = _in_window(args, new, deadline - time.monotonic(), runs_dir, store)
        summaries.append(_launch_jobs(args, new, runtime, store))
        jobs = grid_jobs(grid, runs_dir, store)
    summary = LaunchSummary.merge(summaries, total=len(seen))
    for job in summary.busy:
        console.print(f"busy {job.label} ({job.id}): another process is running it")
    for job, error in summary.failed:
        console.print(f"[red]failed[/red] {job.label} ({job.id}): {error}")
    states = [job_state(j, runs_dir, store) for j in jobs]
    failed = states.count("failed")
    if failed:
        console.print(
            f"grid {grid.name}: {states.count('done')} of {len(jobs)} runs done, {failed} "
            "failed; fix the cause, then rerun them with --retry-failed."
        )
    elif summary.skipped == summary.total:
        console.print(
            f"grid {grid.name}: every one of the {summary.total} runs is done; nothing to train."
        )
    return 1 if failed or summary.failed else 0


def _in_window(
    args: argparse.Namespace, jobs: list[Any], seconds: float, runs_dir: Path, store: Any
) -> list[Any]:
    """The jobs that fit the rest of --window on this machine's slots; the others are named."""
    from regbench.launch.local import plan_slots
    from regbench.launch.window import within_window
    from regbench.perf.table import device_slug
    from regbench.run.records import job_state

    done = {j.id for j in jobs if job_state(j, runs_dir, store) == "done"}
    slots = plan_slots(jobs, args.workers, args.jobs_per_gpu)  # the slots launch will use
    if any(slot.device == "cuda" for slot in slots):
        import torch

        device, per = device_slug(torch.device("cuda")), args.jobs_per_gpu
        slots = [s for s in slots if s.device == "cuda"]
    else:
        device, per = "cpu", 1
    window = within_window(jobs, device, done, len(slots), seconds, per)
    for job, why in window.left:
        console.print(f"not started {job.label} ({job.id}): {why}")
    return [j for j in jobs if j.id in done] + window.started


def _launch_jobs(args: argparse.Namespace, jobs: list[Any], runtime: Any, store: Any) -> Any:
    """The jobs, through the launcher --launcher names (--slurm-config implies slurm)."""
    from regbench.launch.launchers import LAUNCHERS, LaunchOptions

    options = LaunchOptions(
        retry_failed=args.retry_failed,
        echo=console.print,
        store=store,
        workers=args.workers,
        jobs_per_gpu=args.jobs_per_gpu,
        console=console,
        slurm_config=args.slurm_config,
    )
    name = "slurm" if args.slurm_config else args.launcher
    return LAUNCHERS[name](jobs, _runs_dir(args), runtime, options)


def cmd_index(args: argparse.Namespace) -> int:
    from regbench.report.index import write_index

    console.print(f"wrote {write_index(Path(args.results))}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from regbench.plan.grid import expand, load_grid
    from regbench.report.write import write_report
    from regbench.run.records import store_for, thread_mismatches

    grid = load_grid(args.grid)
    out = _out(args, grid)
    # what decides the report: the grid and the folder (the numbers come from its records)
    command = " ".join(["regbench", "report", args.grid, *(["--out", args.out] * bool(args.out))])
    for path in write_report(grid, expand(grid), _runs_dir(args), out, command, args.index):
        console.print(f"wrote {path}")
    if mismatched := thread_mismatches(store_for(out)):
        console.print(
            f"[yellow]warning[/yellow]: {len(mismatched)} run(s) used another CPU thread count "
            f"than their config's execution.threads (e.g. {mismatched[0]}): their numbers are "
            "another trajectory than a rerun would give; delete their records and rerun them."
        )
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    from regbench.tasks import get_task, task_names

    table = Table("task", "metric", "better", "version", "splits", box=None)
    for name in task_names():
        p = get_task(name).protocol
        table.add_row(name, p.metric, p.direction, str(p.version), p.splits)
    console.print(table)
    return 0


def cmd_variants(args: argparse.Namespace) -> int:
    from regbench.models.variants import CELLS, RECIPES, REGULARIZERS, defined_for

    table = Table("variant", "cells", "defaults", "reference", box=None)
    for name, keys in RECIPES.items():
        cells = ", ".join(c for c in CELLS if defined_for(name, c))
        table.add_row(name, cells, "", " + ".join(keys) or "plain cell")
    for key, cls in sorted(REGULARIZERS.items()):
        defaults = ", ".join(f"{k}={v}" for k, v in cls.defaults.items())
        table.add_row(key, ", ".join(cls.cells), defaults, cls.citation)
    console.print(table)
    return 0


COMMANDS = {
    "run": cmd_run,
    "launch": cmd_launch,
    "status": cmd_status,
    "validate": cmd_status,  # launch --dry-run's check, without launching
    "report": cmd_report,
    "index": cmd_index,
    "tasks": cmd_tasks,
    "variants": cmd_variants,
}


def main(argv: list[str] | None = None) -> int:
    try:
        moved_flag(sys.argv[1:] if argv is None else argv)
        args = parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except ConfigError as err:
        print(f"regbench: error: {err}", file=sys.stderr)
        return 2
