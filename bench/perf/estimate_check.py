"""How good the cost estimate is (`python -m regbench.perf.calibrate --check`): for the finished
runs of a grid trained on the calibration's CPU model or GPU, the estimated seconds of
training and validation (with the compile) against the sum of the run record's epoch times."""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from regbench.launch.grid import grid_jobs
from regbench.perf.table import device_slug
from regbench.plan import cost
from regbench.plan.grid import load_grid
from regbench.plan.jobs import Job
from regbench.run.records import lookup, store_for


def check(
    jobs: Sequence[Job],
    runs_dir: Path,
    store: Any,
    device: str = "cpu",
    folder: Path | str = cost.THROUGHPUT,
) -> list[tuple[Job, float, float]]:
    """(job, estimated, measured) seconds of training and validation with the compile, for
    the finished runs of `jobs` trained on the calibration's CPU model or GPU that have an
    estimate; measured is the sum of the run record's per-epoch times (each epoch's training
    and validation)."""
    calibration = cost.load_calibration(device, folder)
    if calibration is None:
        return []
    machine = calibration.data["machine"]
    same = ("gpu", machine["gpu"]) if machine["gpu"] else ("cpu", machine["cpu"])
    out = []
    for job in jobs:
        record = lookup(job, runs_dir, store)
        if record is None or record.state != "done":
            continue
        c = cost.job_cost(job, calibration)
        if not c.why and record.provenance.get("hardware", {}).get(same[0]) == same[1]:
            measured = sum(e["epoch_time_s"] for e in record.epochs)
            out.append((job, c.train_s + c.val_s + c.compile_s, measured))
    return out


def check_lines(compared: list[tuple[Job, float, float]], verbose: bool = False) -> list[str]:
    """The comparison as text: estimate / measured over all runs, and its median and range."""
    if not compared:
        return ["no finished run on this machine with an estimate to compare"]
    ratios = [est / measured for _, est, measured in compared]
    total = sum(e for _, e, _ in compared) / sum(m for *_, m in compared)
    lines = [
        f"estimate / measured (training + validation) over {len(ratios)} finished runs: "
        f"{total:.2f} in all, median {statistics.median(ratios):.2f}, range "
        f"{min(ratios):.2f}–{max(ratios):.2f}"
    ]
    if verbose:
        lines += [f"  {j.label}: {e:.1f} s estimated, {m:.1f} s measured" for j, e, m in compared]
    return lines


def check_grids(args: argparse.Namespace) -> int:
    """--check: each grid's estimate against its finished runs (records, run directories);
    --device a calibration file's name (cuda-nvidia-h200) or a device here."""
    named = args.device.startswith("cuda-")
    device = args.device if named else device_slug(torch.device(args.device))
    for name in args.grids.split(","):
        grid = load_grid(name)
        store = store_for(Path("results") / grid.name)
        jobs = grid_jobs(grid, Path(args.runs_dir), store)
        compared = check(jobs, Path(args.runs_dir), store, device, args.out)
        for line in check_lines(compared, args.verbose):
            print(f"{grid.name} on {device}: {line}")
    return 0
