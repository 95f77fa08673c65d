"""The grammar of the `regbench` command line: its subcommands, their arguments and help, and
the flags that became config keys. What each subcommand does is in cli.py (`COMMANDS`)."""

from __future__ import annotations

import argparse
from typing import Any

from regbench.errors import ConfigError

DEFAULT_RUNS = "runs"
DESCRIPTION = "The `regbench` command: run, launch, status, report, tasks, variants."
OUT_HELP = (
    "the grid's results folder (default results/<grid>); the run records in its records/ "
    "count as finished runs"
)
# the keys of regbench.launch.launchers.LAUNCHERS, named here so that --help imports no
# launcher (tests/test_cli.py checks they agree)
LAUNCHER_NAMES = ("local", "slurm")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="regbench", description=DESCRIPTION)
    sub = ap.add_subparsers(dest="command", required=True)
    _add_run(sub)
    _add_launch(sub)
    for name, text in (
        ("status", "count done / running / pending / failed runs and the cost left"),
        (
            "validate",
            "check a grid file and the data of its jobs to run, list its jobs (launch --dry-run)",
        ),
        ("report", "write the grid's results tables and run records"),
    ):
        _add_grid_command(sub, name, text)
    index = sub.add_parser("index", help="rewrite results/README.md, the index of the reports")
    index.add_argument("results", nargs="?", default="results")
    sub.add_parser("tasks", help="list tasks")
    sub.add_parser("variants", help="list variants")
    return ap


def _add_run(sub: Any) -> None:
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


def _add_launch(sub: Any) -> None:
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
    launch.add_argument("--out", help=OUT_HELP)


def _add_grid_command(sub: Any, name: str, text: str) -> None:
    """status, validate or report: a grid, its runs directory and output folder."""
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


# Flags that became part of the job's identity: the config key that replaces each.
MOVED = {
    "--threads": "execution.threads",
    "--accelerator": "execution.device",
    "--step-mode": "execution.step_mode",
    "--devices": "execution.devices",
}


def moved_flag(argv: list[str]) -> None:
    """A ConfigError for a flag whose setting is now a config key."""
    for arg in argv:
        flag = arg.partition("=")[0]
        if flag in MOVED:
            key = MOVED[flag]
            raise ConfigError(
                f"{flag} is gone: it changes a job's numbers, so it is the config key {key} "
                f"(a grid's overrides: {{{key}: ...}}, or regbench run --set {key}=...)."
            )
