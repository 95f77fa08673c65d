"""A run's result (result.json) and a job's outcome: the one schema their readers share.

`RunResult` is result.json as train() writes it when a run finishes (run/train.py) and as a
run record keeps it (records.py): the metrics at the selected epoch, the test metrics on the
selected checkpoint, and the cost. It types the dict, it does not change it: the file, and the
records that embed it, keep their format (written with sorted keys).

`Outcome` is what running one job gives a launcher or `regbench run`: done with its result,
failed with its error, or busy (another process holds the run directory); `describe()` is its
one line, the same for every launcher.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypedDict

OutcomeState = Literal["done", "failed", "busy"]
BUSY = "another process is running this job"


class PeakMemory(TypedDict):
    """Peak memory of a run (memory.py): torch's GPU allocation, or the process's peak RSS."""

    gpu_allocated: int | None
    cpu_rss: int | None


class _RunResultKeys(TypedDict):
    task: str
    variant: str
    cell: str
    metric: str  # the task protocol's metric: a key of `val` and `test`
    direction: str  # "min" or "max": which way the metric improves
    best_epoch: int  # the epoch whose checkpoint was selected on validation
    epochs: int
    val: dict[str, float]  # at the selected epoch
    test: dict[str, float]  # on the selected checkpoint, evaluated once
    selected_checkpoint_score: float
    num_parameters: int
    train_time_s: float
    train_batch_time_s: float
    tokens_per_s: float
    peak_memory_bytes: PeakMemory
    references: dict[str, float]  # the task's reference values of the metric
    data_source: dict[str, str]


class RunResult(_RunResultKeys, total=False):
    """result.json. The keys below were added later: a run directory written before them
    lacks them, so readers use .get for these."""

    sequences_per_s: float
    wall_time_s: float  # every attempt's wall time (attempts.json)
    attempts: int
    step_mode: str


def metric_value(result: RunResult, split: Literal["val", "test"] = "test") -> float:
    """The metric on `split`: test on the selected checkpoint (the number a table reports),
    or val at the selected epoch."""
    return result[split][result["metric"]]


@dataclass(frozen=True)
class Outcome:
    """How one job ended for the process that ran it (pickled across worker processes and
    SLURM tasks: keep it plain data)."""

    state: OutcomeState
    result: RunResult | None = None
    error: str | None = None

    @classmethod
    def done(cls, result: RunResult) -> Outcome:
        return cls("done", result=result)

    @classmethod
    def failed(cls, error: str) -> Outcome:
        return cls("failed", error=error)

    @classmethod
    def busy(cls) -> Outcome:
        return cls("busy", error=BUSY)

    def describe(self, val: bool = False) -> str:
        """One line: the test metric and the selected epoch (with `val`, the validation
        metric too), or why there is no result."""
        if self.state == "busy":
            return f"left alone ({self.error})"
        if self.state != "done" or self.result is None:
            return f"FAILED ({self.error or 'no result'})"
        r, metric = self.result, self.result["metric"]
        seen = f", val {metric} {metric_value(r, 'val'):.4g}" if val else ""
        return f"test {metric} {metric_value(r):.4g}{seen} (best epoch {r['best_epoch']})"
