"""The nightly-style check (not in CI): rerun one job of a ladder rung from scratch, in a
fresh runs folder, and check it against the grid's published reference and the committed
result of the same job. Default: copy memory T=1000, LSTM, seed 0 (about 10 minutes on a
2-core CPU).

    python -m regbench.checks.nightly [--grid copy_memory_tcn] [--cell lstm] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

from regbench.launch.local import launch_local
from regbench.plan.grid import expand, load_grid
from regbench.run.result import metric_value
from regbench.run.rundir import RunDir
from regbench.run.runtime import Runtime

RESULTS = Path("results")
RTOL = 1e-3  # against the committed number: same code and config, another machine or day


def committed_value(grid: str, job_id: str) -> float | None:
    path = RESULTS / grid / "results.json"
    if not path.exists():
        return None
    for row in json.loads(path.read_text()).get("rows", []):
        for run_id, value in zip(row.get("done_ids", []), row.get("test_values", []), strict=False):
            if run_id == job_id:
                return value
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m regbench.checks.nightly", description=__doc__)
    ap.add_argument("--grid", default="copy_memory_tcn")
    ap.add_argument("--cell", default="lstm")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir")
    args = ap.parse_args(argv)
    grid = load_grid(args.grid)
    matches = [
        j for j in expand(grid) if j.row_key[1] == args.cell and j.seed == args.seed and not j.point
    ]
    if not matches:
        ap.error(f"grid {grid.name} has no job with cell {args.cell} and seed {args.seed}")
    job = matches[0]
    runs = Path(tempfile.mkdtemp(prefix="regbench-nightly-"))
    runtime = Runtime(wandb="disabled", data_dir=args.data_dir)
    summary = launch_local([job], runs, runtime)
    if not summary.ok:
        print(f"FAIL: the run failed: {summary.failed[0][1]}")
        return 1
    ours = metric_value(RunDir.of(job.id, runs).read_result())
    return _verdict(grid, job, ours)


def _verdict(grid, job, ours: float) -> int:
    failures = []
    for ref in grid.references:
        if ref.key[:3] == job.row_key[:3] and not ref.accepts(ours):
            failures.append(f"{ours:.5g} outside {ref.rule} ({ref.source})")
    committed = committed_value(grid.name, job.id)
    if committed is not None and not math.isclose(ours, committed, rel_tol=RTOL):
        failures.append(f"{ours:.6g} differs from the committed {committed:.6g}")
    label = f"{job.label} ({job.id}): test {ours:.6g}"
    print(("FAIL: " + label + "; " + "; ".join(failures)) if failures else f"OK: {label}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
