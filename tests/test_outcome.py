"""The contract of a run's outcome and result.json (regbench.run.result): one describe() for
every launcher, one tally of outcomes (LaunchSummary), and a RunResult schema that matches the
committed run records."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from regbench.plan.config import resolve
from regbench.plan.jobs import Job
from regbench.run.job import LaunchSummary
from regbench.run.result import BUSY, Outcome, RunResult, metric_value

RESULTS = Path(__file__).resolve().parents[1] / "results"
RESULT = {  # the keys describe() reads
    "metric": "perplexity",
    "val": {"perplexity": 101.23456, "loss": 4.6},
    "test": {"perplexity": 98.765432, "loss": 4.5},
    "best_epoch": 7,
}


def test_describe_is_one_line_per_state():
    assert Outcome.done(RESULT).describe() == "test perplexity 98.77 (best epoch 7)"
    assert (
        Outcome.done(RESULT).describe(val=True)
        == "test perplexity 98.77, val perplexity 101.2 (best epoch 7)"
    )
    assert Outcome.failed("ValueError: x").describe() == "FAILED (ValueError: x)"
    assert Outcome.busy().describe() == f"left alone ({BUSY})"
    assert Outcome("done").describe() == "FAILED (no result)"  # done without a result


def test_metric_value_reads_the_protocol_metric():
    assert metric_value(RESULT) == 98.765432
    assert metric_value(RESULT, "val") == 101.23456


def test_an_outcome_survives_the_process_boundary():
    """Workers and SLURM tasks return it pickled."""
    for outcome in (Outcome.done(RESULT), Outcome.failed("e"), Outcome.busy()):
        assert pickle.loads(pickle.dumps(outcome)) == outcome


def _jobs(n: int) -> list[Job]:
    return [Job(resolve("adding", "none", "lstm", seed)) for seed in range(n)]


def test_launch_summary_tallies_and_merges_outcomes():
    a, b, c, d = _jobs(4)
    first = LaunchSummary(total=3, skipped=1)
    first.add(a, Outcome.done(RESULT))
    first.add(b, Outcome.busy())
    second = LaunchSummary(total=2)
    second.add(c, Outcome.failed("diverged: loss nan"))
    second.add(d, None)  # ended without an outcome
    assert first.ok and not second.ok
    merged = LaunchSummary.merge([first, second], total=4)
    assert (merged.total, merged.skipped) == (4, 1)
    assert merged.done == [a] and merged.busy == [b]
    assert merged.failed == [(c, "diverged: loss nan"), (d, "no result")]


def _committed_results() -> list[dict]:
    return [
        data["result"]
        for path in sorted(RESULTS.glob("*/records/*.json"))
        if (data := json.loads(path.read_text()))["result"] is not None
    ]


@pytest.mark.skipif(not _committed_results(), reason="no committed run records")
def test_run_result_schema_matches_the_committed_records():
    """Every key of a committed result.json is in RunResult, and every required key is in
    every committed result."""
    keys = RunResult.__required_keys__ | RunResult.__optional_keys__
    for result in _committed_results():
        assert set(result) <= keys, set(result) - keys
        missing = RunResult.__required_keys__ - set(result)
        assert not missing, missing
