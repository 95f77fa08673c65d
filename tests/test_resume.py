"""kill -9 in the middle of a run, then again: the run resumes from its last checkpoint and
ends exactly where an uninterrupted run ends, as one W&B run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import wandb_records

OVERRIDES = {
    "task.params.T": 20,
    "task.params.n_train": 1500,
    "model.hidden_size": 24,
    "train.max_epochs": 6,
}
SECRET = "0123456789abcdef0123456789abcdef01234567"


def command(runs: Path) -> list[str]:
    sets = [a for k, v in OVERRIDES.items() for a in ("--set", f"{k}={v}")]
    return [
        sys.executable,
        "-m",
        "regbench",
        "run",
        "--task",
        "adding",
        "--variant",
        "zoneout",
        "--runs-dir",
        str(runs),
        *sets,
    ]


def epochs_logged(runs: Path) -> int:
    files = list(runs.glob("*/metrics.jsonl"))
    return len(files[0].read_text().splitlines()) if files else 0


def kill_after_epochs(runs: Path, env: dict, epochs: int) -> None:
    proc = subprocess.Popen(
        command(runs), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while epochs_logged(runs) < epochs and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_killed_run_resumes_and_matches_an_uninterrupted_run(tmp_path):
    env = {**os.environ, "WANDB_API_KEY": SECRET}
    interrupted, clean = tmp_path / "interrupted", tmp_path / "clean"
    kill_after_epochs(interrupted, env, 2)
    (run,) = interrupted.iterdir()
    assert not (run / "done").exists(), "the run finished before it could be killed"
    assert (run / "checkpoints" / "last.ckpt").exists()
    subprocess.run(command(interrupted), env=env, check=True, capture_output=True)
    subprocess.run(command(clean), env=env, check=True, capture_output=True)

    resumed = json.loads((run / "result.json").read_text())
    straight = json.loads((clean / run.name / "result.json").read_text())
    assert resumed["attempts"] == 2 and straight["attempts"] == 1
    assert resumed["test"] == straight["test"] and resumed["val"] == straight["val"]
    assert resumed["best_epoch"] == straight["best_epoch"]
    lines = [json.loads(ln)["val/mse"] for ln in (run / "metrics.jsonl").read_text().splitlines()]
    clean_lines = (clean / run.name / "metrics.jsonl").read_text().splitlines()
    assert lines == [json.loads(ln)["val/mse"] for ln in clean_lines]
    assert json.loads((run / "attempts.json").read_text())["resumed_from_epochs"]

    tracked = wandb_records.summary(run)
    assert tracked["ids"] == {run.name}  # one W&B run id across both attempts
    assert len(list(run.glob("wandb/offline-run-*"))) == 2
    assert {"task", "model", "regularizers", "seeds"} <= tracked["config"]
    assert {"val/mse", "train/loss", "test/mse"} <= tracked["history"]
    assert tracked["job_type"] == "adding" and tracked["tags"] == ["zoneout", "lstm"]

    for path in run.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), f"API key written to {path}"
