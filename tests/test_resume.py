"""kill -9 in the middle of a run, then again: the run resumes after the last epoch it finished
and ends exactly where an uninterrupted run ends; attempts.json counts every attempt and its
wall time; the W&B run of the run directory holds every epoch once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import wandb_records
from regbench.run.rundir import load_checkpoint

pytestmark = pytest.mark.slow  # end-to-end runs; `make test-slow`

OVERRIDES = {
    "task.params.T": 20,
    "task.params.n_train": 1500,
    "model.hidden_size": 24,
    "train.max_epochs": 6,
}
SECRET = "0123456789abcdef0123456789abcdef01234567"
ENV = {**os.environ, "WANDB_API_KEY": SECRET}


def command(runs: Path, overrides: dict[str, Any]) -> list[str]:
    sets = [a for k, v in overrides.items() for a in ("--set", f"{k}={v}")]
    regbench = [sys.executable, "-m", "regbench", "run", "--runs-dir", str(runs)]
    return [*regbench, "--task", "adding", "--variant", "zoneout", *sets]


def rows(run: Path) -> list[dict[str, Any]]:
    path = run / "metrics.jsonl"
    return [json.loads(ln) for ln in path.read_text().splitlines()] if path.exists() else []


def last_epoch(run: Path) -> int | None:
    """The epoch last.ckpt ended (written by a rename, so never read half-written)."""
    try:
        return load_checkpoint(run / "checkpoints" / "last.ckpt")["epoch"]
    except Exception:  # not there, or cut short while being copied into place
        return None


def checkpointed(epochs: int) -> Callable[[Path], bool]:
    """At least `epochs` epochs logged, and last.ckpt holds the last of them."""
    return lambda run: len(rows(run)) >= epochs and last_epoch(run) == len(rows(run)) - 1


def kill_when(runs: Path, overrides: dict[str, Any], ready: Callable[[Path], bool]) -> Path:
    """Start `regbench run`, SIGKILL it as soon as `ready(run directory)`; the directory."""
    proc = subprocess.Popen(
        command(runs, overrides), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        found = list(runs.glob("*/config.json"))
        if found and ready(found[0].parent):
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before the moment to kill it"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    (run,) = runs.iterdir()
    assert not (run / "done").exists()
    return run


def attempts(run: Path) -> dict[str, Any]:
    return json.loads((run / "attempts.json").read_text())


def history(run: Path) -> list[dict[str, float]]:
    """The history rows of the run directory's W&B offline run (exactly one)."""
    (path,) = run.glob("wandb/offline-run-*/run-*.wandb")
    found = []
    for record in wandb_records.records(path):
        if record.WhichOneof("record_type") == "history":
            items = ((i.key or "/".join(i.nested_key), i.value_json) for i in record.history.item)
            found.append({k: json.loads(v) for k, v in items})
    return found


def same_epochs(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    """The same rows apart from their wall time."""
    strip = [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in (*a, *b)]
    return strip[: len(a)] == strip[len(a) :]


def test_killed_run_resumes_after_its_last_epoch_and_matches_an_uninterrupted_run(tmp_path):
    interrupted, clean = tmp_path / "interrupted", tmp_path / "clean"
    run = kill_when(interrupted, OVERRIDES, checkpointed(2))
    before, killed = rows(run), attempts(run)
    epoch = last_epoch(run)
    assert epoch is not None and epoch >= 1 and killed["wall_time_s"] > 0
    subprocess.run(command(interrupted, OVERRIDES), env=ENV, check=True, capture_output=True)
    subprocess.run(command(clean, OVERRIDES), env=ENV, check=True, capture_output=True)

    resumed = json.loads((run / "result.json").read_text())
    straight = json.loads((clean / run.name / "result.json").read_text())
    assert resumed["attempts"] == 2 and straight["attempts"] == 1
    assert resumed["test"] == straight["test"] and resumed["val"] == straight["val"]
    assert resumed["best_epoch"] == straight["best_epoch"]
    after = rows(run)
    assert same_epochs(after, rows(clean / run.name)) and len(after) == 6
    assert after[: epoch + 1] == before[: epoch + 1]  # kept as written, not trained again
    record = attempts(run)
    assert record["resumed_from_epochs"] == [epoch]  # resumed at epoch + 1
    resumed_time = sum(r["epoch_time_s"] for r in after[epoch + 1 :])
    assert record["wall_time_s"] >= killed["wall_time_s"] + resumed_time
    assert record["wall_time_s"] == resumed["wall_time_s"]

    tracked = wandb_records.summary(run)
    assert tracked["ids"] == {run.name}  # one W&B run id across both attempts
    assert {"task", "model", "regularizers", "seeds"} <= tracked["config"]
    assert tracked["job_type"] == "adding" and tracked["tags"] == ["zoneout", "lstm"]
    logged = history(run)
    assert [h["epoch"] for h in logged if "epoch" in h] == list(range(6))  # each once
    assert [h["val/mse"] for h in logged if "epoch" in h] == [r["val/mse"] for r in after]
    assert logged[-1]["test/mse"] == resumed["test"]["mse"]

    for path in run.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), f"API key written to {path}"


def test_a_kill_before_the_first_checkpoint_counts_and_resuming_skips_no_finished_epoch(
    tmp_path,
):
    """Three attempts: killed before any epoch, killed after epoch 2 or later of a run whose
    validation never improves after epoch 0 (lr 0; last.ckpt once followed best.ckpt only),
    then finished."""
    runs = tmp_path / "runs"
    overrides = {**OVERRIDES, "train.max_epochs": 4, "train.lr": 0}
    run = kill_when(runs, overrides, lambda run: (run / "attempts.json").exists())
    assert not rows(run) and last_epoch(run) is None
    assert attempts(run) == {"attempts": 1, "resumed_from_epochs": [], "wall_time_s": 0.0}

    run = kill_when(runs, overrides, checkpointed(3))
    before, killed = rows(run), attempts(run)
    epoch = last_epoch(run)
    assert epoch is not None and epoch >= 2
    assert killed["attempts"] == 2 and killed["resumed_from_epochs"] == []
    assert killed["wall_time_s"] >= sum(r["epoch_time_s"] for r in before)

    subprocess.run(command(runs, overrides), env=ENV, check=True, capture_output=True)
    result = json.loads((run / "result.json").read_text())
    after, record = rows(run), attempts(run)
    assert result["attempts"] == record["attempts"] == 3 and result["best_epoch"] == 0
    assert record["resumed_from_epochs"] == [epoch]
    assert after[: epoch + 1] == before[: epoch + 1] and len(after) == 4
    assert record["wall_time_s"] >= killed["wall_time_s"] + after[-1]["epoch_time_s"]
    assert [h["epoch"] for h in history(run) if "epoch" in h] == [0, 1, 2, 3]
