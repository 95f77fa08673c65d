"""Real Lightning training on tiny data: one run, reproducibility, a grid to a table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from regbench.cli import main
from regbench.plan.config import resolve
from regbench.plan.jobs import Job
from regbench.run.rundir import RunDir
from regbench.run.train import Runtime, train

CPU = Runtime()


@pytest.mark.parametrize("task", ["seq_digits", "adding", "copy_memory"])
def test_one_run_writes_a_complete_run_directory(tmp_path, tiny, task):
    config = resolve(task, "zoneout", "lstm", 0, tiny[task])
    run = RunDir(tmp_path / Job(config).id)
    result = train(config, run.path, CPU)
    assert run.state() == "done"
    assert json.loads(run.config.read_text()) == config
    epochs = run.epochs()
    assert [e["epoch"] for e in epochs] == [0, 1]
    metric = result["metric"]
    assert {"train/loss", f"val/{metric}", "val/loss", "lr"} <= set(epochs[0])
    assert result["val"][metric] == pytest.approx(result["selected_checkpoint_score"])
    assert set(result["test"]) == {"loss", metric}
    assert result["num_parameters"] > 0 and result["tokens_per_s"] > 0
    assert result["peak_memory_bytes"]["cpu_rss"] > 0
    prov = json.loads(run.provenance.read_text())
    assert prov["seeds"] == config["seeds"] and "torch" in prov["packages"]
    assert {"commit", "dirty"} <= set(prov["code"]) and prov["hardware"]["cpu"]
    assert (run.checkpoints / "best.ckpt").exists()


def test_selected_epoch_is_the_best_validation_epoch(tmp_path, tiny):
    overrides = {**tiny["seq_digits"], "train.max_epochs": 4}
    config = resolve("seq_digits", "none", "lstm", 0, overrides)
    result = train(config, tmp_path / "r", CPU)
    values = [e["val/accuracy"] for e in RunDir(tmp_path / "r").epochs()]
    assert result["best_epoch"] == values.index(max(values))
    assert result["val"]["accuracy"] == max(values)


@pytest.mark.parametrize("variant", ["none", "dropout", "variational", "zoneout"])
def test_same_seed_gives_identical_metrics(tmp_path, tiny, variant):
    config = resolve("adding", variant, "lstm", 3, tiny["adding"])
    first = train(config, tmp_path / "a", CPU)
    second = train(config, tmp_path / "b", CPU)
    assert first["test"] == second["test"] and first["val"] == second["val"]
    other = train(resolve("adding", variant, "lstm", 4, tiny["adding"]), tmp_path / "c", CPU)
    assert other["test"] != first["test"]


def test_a_done_run_is_never_overwritten(tmp_path, tiny):
    config = resolve("copy_memory", "none", "lstm", 0, tiny["copy_memory"])
    train(config, tmp_path / "r", CPU)
    with pytest.raises(RuntimeError, match="refusing to overwrite"):
        train(config, tmp_path / "r", CPU)


def write_tiny_grid(path: Path, tiny) -> Path:
    lines = ["name: tiny", "tasks:"]
    for task in ("seq_digits", "adding"):
        lines.append(f"  {task}:")
        lines += [f"    {k}: {v}" for k, v in tiny[task].items()]
    lines += ["variants: [none, zoneout]", "seeds: [0, 1]"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_grid_to_table_and_rerun_skips_done_runs(tmp_path, tiny, capsys):
    grid = write_tiny_grid(tmp_path / "tiny.yaml", tiny)
    runs, out = tmp_path / "runs", tmp_path / "results"
    assert main(["launch", str(grid), "--runs-dir", str(runs)]) == 0
    assert len(list(runs.glob("*/done"))) == 8
    assert main(["report", str(grid), "--runs-dir", str(runs), "--out", str(out)]) == 0
    table = (out / "table.md").read_text()
    assert "| seq_digits | accuracy | ↑ higher | none | lstm |" in table
    assert "| adding | mse | ↓ lower | zoneout | lstm |" in table
    assert "sample standard deviation" in table and "best validation" in table
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["n"] for r in rows] == [2, 2, 2, 2]
    for row in rows:
        values = [
            json.loads((runs / i / "result.json").read_text())["test"][row["metric"]]
            for i in row["run_ids"]
        ]
        assert row["test_values"] == values
    capsys.readouterr()
    assert main(["launch", str(grid), "--runs-dir", str(runs)]) == 0
    assert "every one of the 8 runs is done" in capsys.readouterr().out


@pytest.mark.slow
def test_one_run_over_two_processes_with_ddp(tmp_path, tiny):
    """execution.devices 2 on the CPU: Lightning DDP with two processes, each on half the
    data."""
    import subprocess
    import sys

    sets = [a for k, v in tiny["seq_digits"].items() for a in ("--set", f"{k}={v}")]
    cmd = [
        sys.executable,
        "-m",
        "regbench",
        "run",
        "--task",
        "seq_digits",
        "--set",
        "execution.devices=2",
        "--runs-dir",
        str(tmp_path),
        "--wandb",
        "disabled",
        *sets,
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    (run,) = [RunDir(p) for p in tmp_path.iterdir()]
    assert run.state() == "done"
    first = run.epochs()[0]
    assert first["step"] == 9  # ceil(1078 / 2 ranks / batch 64) steps, not 17
    result = json.loads(run.result.read_text())
    assert 0.0 <= result["test"]["accuracy"] <= 1.0


def test_without_the_wandb_package_offline_runs_log_nothing_and_online_is_refused(
    tmp_path, tiny, monkeypatch
):
    from regbench.errors import ConfigError
    from regbench.run.trainer import wandb_logger

    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError
    monkeypatch.delenv("WANDB_MODE", raising=False)
    config = resolve("adding", "none", "lstm", 0, tiny["adding"])
    run = RunDir(tmp_path / "run")
    with pytest.warns(UserWarning, match="wandb is not installed"):
        assert wandb_logger(config, run, Runtime(wandb="offline"), "job") is False
    with pytest.raises(ConfigError, match="pip install wandb"):
        wandb_logger(config, run, Runtime(wandb="online"), "job")
