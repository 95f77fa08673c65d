"""The `regbench` command: run, launch, status, report, tasks, variants."""

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

from regbench.errors import ConfigError

DEFAULT_RUNS = "runs"
OUT_HELP = (
    "the grid's results folder (default results/<grid>); the run records in its records/ "
    "count as finished runs"
)
console = Console(highlight=False, soft_wrap=True)
# the keys of regbench.launch.launchers.LAUNCHERS, named here so that --help imports no
# launcher (tests/test_cli.py checks they agree)
LAUNCHER_NAMES = ("local", "slurm")


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


def _add_runtime(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--runs-dir",
        help=f"where run directories live (env REGBENCH_RUNS; default ./{DEFAULT_RUNS})",
    )
    p.add_argument(
        "--data-dir",
        help="local data in the original formats (env REGBENCH_DATA; "
        "default: the Hugging Face hub)",
    )
    p.add_argument(
        "--wandb",
        default="offline",
        choices=("offline", "online", "disabled"),
        help="W&B mode (default offline: files in each run directory; WANDB_MODE overrides)",
    )
    p.add_argument("--project", default="regbench", help="W&B project (default regbench)")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="regbench", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train one task × variant × seed")
    run.add_argument("--task", required=True)
    run.add_argument("--variant", default="none")
    run.add_argument("--cell", default="lstm")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set train.lr=0.01 (repeatable)",
    )
    run.add_argument("--progress", action="store_true", help="show Lightning's progress bar")
    _add_runtime(run)
    run.set_defaults(func=cmd_run)
    launch = sub.add_parser("launch", help="run every unfinished job of a grid")
    launch.add_argument("grid", help="a grid file or the name of a built-in grid (quick)")
    launch.add_argument("--retry-failed", action="store_true", help="rerun failed jobs too")
    launch.add_argument("--dry-run", action="store_true", help="validate and list, run nothing")
    launch.add_argument(
        "--workers",
        type=int,
        default=1,
        help="CPU workers for the cpu jobs, each job with its config's execution.threads "
        "(default 1)",
    )
    launch.add_argument(
        "--jobs-per-gpu",
        type=int,
        default=1,
        help="cuda jobs sharing each visible GPU (default 1)",
    )
    launch.add_argument(
        "--window",
        type=float,
        metavar="SECONDS",
        help="start only the jobs whose estimated time (results/perf/throughput/, calibrated "
        "on this device) ends within SECONDS; the others wait for another launch",
    )
    launch.add_argument(
        "--launcher",
        choices=LAUNCHER_NAMES,
        default="local",
        help="run here (default) or as one SLURM job array through submitit",
    )
    launch.add_argument(
        "--slurm-config",
        help="YAML with partition, account, time_min, "
        "gpus_per_task, cpus_per_task, mem_gb, array_parallelism, extra "
        "(implies --launcher slurm)",
    )
    _add_runtime(launch)
    launch.set_defaults(func=cmd_launch)
    launch.add_argument("--out", help=OUT_HELP)
    for name, func, text in (
        ("status", cmd_status, "count done / running / pending / failed runs and the cost left"),
        (
            "validate",
            cmd_status,
            "check a grid file and the data of its jobs to run, list its jobs (launch --dry-run)",
        ),
        ("report", cmd_report, "write the grid's results tables and run records"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("grid")
        p.add_argument("--runs-dir")
        if name == "validate":
            p.add_argument(
                "--data-dir",
                help="local data to check, as launch reads it (env REGBENCH_DATA; "
                "default: the Hugging Face hub)",
            )
        p.add_argument("--out", help=OUT_HELP)
        if name == "report":
            p.add_argument(
                "--index",
                action=argparse.BooleanOptionalAction,
                default=None,
                help="rewrite the results index (default: when --out is in results/)",
            )
        else:
            p.add_argument(
                "-v",
                "--verbose",
                action="store_true",
                default=name == "validate",
                help="one line per run",
            )
        p.set_defaults(func=func)
    index = sub.add_parser("index", help="rewrite results/README.md, the index of the reports")
    index.add_argument("results", nargs="?", default="results")
    index.set_defaults(func=cmd_index)
    sub.add_parser("tasks", help="list tasks").set_defaults(func=cmd_tasks)
    sub.add_parser("variants", help="list variants").set_defaults(func=cmd_variants)
    return ap


# Flags that became part of the job's identity: the config key that replaces each.
MOVED = {
    "--threads": "execution.threads",
    "--accelerator": "execution.device",
    "--step-mode": "execution.step_mode",
    "--devices": "execution.devices",
}


def _moved_flag(argv: list[str]) -> None:
    """A ConfigError for a flag whose setting is now a config key."""
    for arg in argv:
        flag = arg.partition("=")[0]
        if flag in MOVED:
            key = MOVED[flag]
            raise ConfigError(
                f"{flag} is gone: it changes a job's numbers, so it is the config key {key} "
                f"(a grid's overrides: {{{key}: ...}}, or regbench run --set {key}=...)."
            )


def main(argv: list[str] | None = None) -> int:
    try:
        _moved_flag(sys.argv[1:] if argv is None else argv)
        args = parser().parse_args(argv)
        return args.func(args)
    except ConfigError as err:
        print(f"regbench: error: {err}", file=sys.stderr)
        return 2
