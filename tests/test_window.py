"""A launch within a time window (launch/window.py, `regbench launch --window`): jobs are
placed longest first on the least-loaded slot, a job that would end after the window or has no
estimate is not started, sharing a device is charged as running slower, and the command line
starts only what fits, naming the rest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from regbench.launch.window import fit
from regbench.perf.calibrate import main as calibrate
from regbench.plan.grid import expand, load_grid
from regbench.plan.jobs import Job

GRID = """
name: tiny_window
tasks:
  seq_digits: {train.max_epochs: 1, model.hidden_size: 16, task.params.n_train: 256}
variants: [none]
seeds: [0, 1]
"""


def jobs(n: int) -> list[Job]:
    return [Job({"seed": i, "variant": "none", "task": {"name": f"t{i}"}}) for i in range(n)]


def test_longest_first_on_the_least_loaded_slot_within_the_window():
    a, b, c, d = jobs(4)
    seconds = {a.id: 50.0, b.id: 40.0, c.id: 30.0, d.id: 25.0}
    window = fit([d, c, b, a], seconds, slots=2, window=70.0)  # slots: a 50 | b 40, c 70
    assert window.started == [a, b, c] and [j for j, _ in window.left] == [d]
    assert window.left[0][1] == "needs ≈ 25 s, 20 s left"
    window = fit([a, b, c, d], seconds, slots=2, window=69.0)  # c would end at 70: d takes it
    assert window.started == [a, b, d] and [j for j, _ in window.left] == [c]


def test_no_estimate_is_not_started_and_sharing_is_charged():
    a, b = jobs(2)
    window = fit([a, b], {a.id: 10.0, b.id: None}, slots=1, window=100.0)
    assert window.started == [a] and window.left == [(b, "no estimate on this device")]
    shared = fit([a], {a.id: 40.0}, slots=2, window=70.0, slowdown=2.0)
    assert shared.started == [] and "80 s" in shared.left[0][1]


@pytest.mark.slow  # a whole launch
def test_launch_with_a_window_starts_only_what_fits(tmp_path):
    grid = tmp_path / "tiny_window.yaml"
    grid.write_text(GRID)
    throughput = tmp_path / "results" / "perf" / "throughput"
    argv = ["--grids", str(grid), "--out", str(throughput), "--steps", "4", "--warmup", "1"]
    assert calibrate([*argv, "--eval-steps", "1", "--row-seconds", "3", "--seconds", "30"]) == 0
    env = {**os.environ, "WANDB_MODE": "disabled"}
    command = [sys.executable, "-m", "regbench", "launch", str(grid), "--runs-dir", "runs"]
    none = subprocess.run([*command, "--window", "0.001"], cwd=tmp_path, env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert none.returncode == 0, none.stderr
    assert none.stdout.count("not started") == 2 and not Path(tmp_path, "runs").exists()
    both = subprocess.run([*command, "--window", "3600"], cwd=tmp_path, env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert both.returncode == 0, both.stderr
    assert "not started" not in both.stdout
    ids = {j.id for j in expand(load_grid(grid))}
    assert {p.name for p in Path(tmp_path, "runs").iterdir() if p.name in ids} == ids
