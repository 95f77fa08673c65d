"""Inputs that used to escape as tracebacks or noise (issue 18 §4): non-finite floats in the
config, and wandb's warning about the `anonymous` setting in every run."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from regbench.cli import main
from regbench.errors import ConfigError
from regbench.plan.config import resolve

FLOAT_KEYS = {  # float fields of each section: train, model (one nullable), a regularizer rate
    "train.lr": "adding",
    "model.forget_bias": "adding",
    "regularizers.zoneout.z_c": "adding",
    "model.init_scale": "adding",
}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("key", list(FLOAT_KEYS))
def test_a_non_finite_float_is_refused_naming_its_key(key, value):
    with pytest.raises(ConfigError) as err:
        resolve(FLOAT_KEYS[key], "zoneout", "lstm", 0, {key: value})
    message = str(err.value)
    assert message == f"{key}: must be a finite number, got {value}."


@pytest.mark.parametrize("spelling", [".nan", ".inf", "-.Inf"])
def test_yaml_nan_and_inf_on_the_command_line_and_in_a_grid(tmp_path, capsys, spelling):
    argv = ["run", "--task", "adding", "--runs-dir", str(tmp_path), "--set", f"train.lr={spelling}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train.lr: must be a finite number" in err
    grid = tmp_path / "g.yaml"
    grid.write_text(
        f"tasks: [adding]\nvariants: [none]\nseeds: [0]\nsweep: [{{train.lr: {spelling}}}]\n"
    )
    assert main(["launch", str(grid), "--dry-run", "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train.lr: must be a finite number" in err


@pytest.mark.slow
def test_a_run_prints_no_wandb_anonymous_warning(tmp_path):
    sets = {
        "task.params.T": 12,
        "task.params.n_train": 64,
        "task.params.n_val": 32,
        "task.params.n_test": 32,
        "model.hidden_size": 8,
        "train.max_epochs": 1,
    }
    argv = [
        sys.executable,
        "-m",
        "regbench",
        "run",
        "--task",
        "adding",
        "--runs-dir",
        str(tmp_path),
    ]
    argv += [arg for k, v in sets.items() for arg in ("--set", f"{k}={v}")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    run = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert list(tmp_path.glob("*/wandb/offline-run-*"))  # W&B did log the run
    assert "anonymous" not in run.stderr + run.stdout
