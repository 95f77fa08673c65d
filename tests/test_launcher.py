"""The local launcher: two CPU workers, a launch killed with SIGKILL at a random moment and
relaunched ends with every job done once and the same numbers as an uninterrupted launch."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

GRID = """name: killtest
tasks:
  adding: {task.params.T: 20, task.params.n_train: 1200, model.hidden_size: 24,
           train.max_epochs: 5}
variants: [none, zoneout]
seeds: [0, 1]
"""


def launch_cmd(grid: Path, runs: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "regbench",
        "launch",
        str(grid),
        "--runs-dir",
        str(runs),
        "--workers",
        "2",
        "--wandb",
        "disabled",
    ]


def epochs_logged(runs: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in runs.glob("*/metrics.jsonl"))


def results(runs: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in runs.glob("*/result.json")}


@pytest.mark.slow
def test_killed_launch_relaunched_equals_an_uninterrupted_launch(tmp_path):
    grid = tmp_path / "killtest.yaml"
    grid.write_text(GRID)
    interrupted, clean = tmp_path / "interrupted", tmp_path / "clean"
    proc = subprocess.Popen(
        launch_cmd(grid, interrupted), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    target = random.Random(os.getpid()).randint(3, 8)
    deadline = time.time() + 180
    while epochs_logged(interrupted) < target and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(1.0)  # the workers die with the launcher (PR_SET_PDEATHSIG)
    assert len(list(interrupted.glob("*/done"))) < 4, "everything finished before the kill"

    relaunch = subprocess.run(launch_cmd(grid, interrupted), capture_output=True, text=True)
    assert relaunch.returncode == 0, relaunch.stdout + relaunch.stderr
    subprocess.run(launch_cmd(grid, clean), check=True, capture_output=True)

    resumed, straight = results(interrupted), results(clean)
    assert len(resumed) == len(straight) == 4 == len(list(interrupted.glob("*/done")))
    for job_id, result in resumed.items():
        assert result["test"] == straight[job_id]["test"], job_id
        assert result["val"] == straight[job_id]["val"], job_id
    attempts = [json.loads((interrupted / j / "attempts.json").read_text()) for j in resumed]
    assert max(a["attempts"] for a in attempts) == 2
    assert any(a["resumed_from_epochs"] for a in attempts)  # resumed, not restarted


def test_failures_are_recorded_by_kind_and_the_others_finish(tmp_path_factory, capsys):
    """With 2 workers: a job that raises, one whose loss is NaN and one that os._exit()s are
    recorded (error, diverged with its step, crashed) while the rest finish; exit status 1."""
    import pytest

    from probe import probe_installed
    from regbench.cli import main
    from regbench.run.rundir import read_json

    root = tmp_path_factory.mktemp("probe")
    grid = root / "failing.yaml"
    grid.write_text(
        "tasks:\n  probe: {task.params.raise_seed: 1, task.params.nan_seed: 2, "
        "task.params.crash_seed: 3}\nvariants: [none]\nseeds: [0, 1, 2, 3, 4]\n"
    )
    runs = root / "runs"
    with pytest.MonkeyPatch.context() as mp, probe_installed(root, mp):
        mp.setenv("WANDB_MODE", "disabled")
        code = main(["launch", str(grid), "--runs-dir", str(runs), "--workers", "2"])
        out = capsys.readouterr().out
        assert code == 1 and "2 of 5 runs done, 3 failed" in out
        again = main(["launch", str(grid), "--runs-dir", str(runs)])  # trains nothing
        out = capsys.readouterr().out
        assert again == 1 and "3 failed" in out and "--retry-failed" in out
        assert "nothing to train" not in out
    kinds = {}
    for run in runs.iterdir():
        config = read_json(run / "config.json")
        if (run / "failed.json").exists():
            kinds[config["seed"]] = read_json(run / "failed.json")
        else:
            assert (run / "done").exists()
    assert sorted(kinds) == [1, 2, 3]
    assert kinds[1]["kind"] == "error" and "probe raises" in kinds[1]["traceback"]
    assert kinds[2]["kind"] == "diverged" and "at step 0" in kinds[2]["error"]
    assert kinds[3]["kind"] == "crashed"
