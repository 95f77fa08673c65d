"""Run directories written by hand, for report tests where the statistics are the point."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from regbench.plan.grid import expand, load_grid
from regbench.plan.jobs import Job
from regbench.run.rundir import RunDir, write_json_atomic

PROVENANCE = {
    "code": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False},
    "packages": {"python": "3.11.7", "torch": "2.13.0+cpu", "lightning": "2.6.6"},
    "hardware": {"cpu": "Test CPU", "cpu_count": 2, "platform": "Linux", "hostname": "h"},
    "seeds": {},
    "command": ["pytest"],
}


def write_grid(path: Path, body: str) -> tuple[object, list[Job]]:
    path.write_text(body)
    grid = load_grid(path)
    return grid, expand(grid)


def done(
    job: Job,
    runs: Path,
    test: float,
    val: float | None = None,
    train_time_s: float = 10.0,
    curve: Sequence[float] = (),
) -> RunDir:
    """A finished run with the given test (and validation) metric and training time."""
    run = RunDir.of(job.id, runs)
    config = job.config
    metric = {"seq_digits": "accuracy", "adding": "mse", "copy_memory": "cross_entropy"}[
        config["task"]["name"]
    ]
    val = test if val is None else val
    write_json_atomic(run.config, dict(config))
    curve = list(curve) or [val]
    run.metrics.write_text(
        "".join(
            f'{{"epoch": {i}, "val/{metric}": {v}, "val/loss": 1.0, "epoch_time_s": 1.0}}\n'
            for i, v in enumerate(curve)
        )
    )
    write_json_atomic(
        run.result,
        {
            "task": config["task"]["name"],
            "variant": config["variant"],
            "cell": config["model"]["cell"],
            "metric": metric,
            "direction": "max" if metric == "accuracy" else "min",
            "best_epoch": 0,
            "epochs": len(curve),
            "val": {metric: val, "loss": 1.0},
            "test": {metric: test, "loss": 1.0},
            "num_parameters": 1234,
            "train_time_s": train_time_s,
            "wall_time_s": train_time_s + 1,
            "tokens_per_s": 1000.0 / train_time_s,
            "sequences_per_s": 10.0 / train_time_s,
            "peak_memory_bytes": {"gpu_allocated": None, "cpu_rss": 512 * 2**20},
            "references": {"chance": 0.1},
        },
    )
    write_json_atomic(run.provenance, {**PROVENANCE, "seeds": config["seeds"]})
    run.mark_done()
    return run


def failed(job: Job, runs: Path, kind: str = "error", error: str = "RuntimeError: boom") -> RunDir:
    run = RunDir.of(job.id, runs)
    write_json_atomic(run.config, dict(job.config))
    write_json_atomic(run.failed, {"error": error, "kind": kind, "traceback": "", "time": "t"})
    return run
