"""Checkpoints load without running code: a real malicious pickle planted as last.ckpt of a
pending run is refused with one line naming it, and its command never runs; a checkpoint cut
short by a kill is removed and the run starts afresh; a real run's checkpoints load under the
allow-list."""

from __future__ import annotations

import ast
import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from regbench.cli import main
from regbench.plan.config import resolve
from regbench.plan.grid import expand, load_grid
from regbench.plan.jobs import Job
from regbench.run.rundir import RunDir, UnsafeCheckpoint, load_checkpoint, write_json_atomic
from regbench.run.train import Runtime, train

ROOT = Path(__file__).resolve().parents[1]
REFUSED = "not a checkpoint regbench can load safely"


class Payload:
    """What an attacker plants: unpickling it runs a shell command (touching `marker`)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def torch_payload(marker: Path) -> bytes:
    """A torch.save file (zip) whose state dict is the payload."""
    buffer = io.BytesIO()
    torch.save({"epoch": 1, "state_dict": Payload(marker)}, buffer)
    return buffer.getvalue()


def pickle_payload(marker: Path) -> bytes:
    """A bare pickle of the payload (torch.load reads it in its legacy format)."""
    return pickle.dumps(Payload(marker), protocol=2)


def plant(run: RunDir, config: dict, data: bytes, name: str = "last.ckpt") -> Path:
    """A pending run directory with `data` as one of its checkpoints."""
    write_json_atomic(run.config, config)
    run.checkpoints.mkdir(parents=True, exist_ok=True)
    (run.checkpoints / name).write_bytes(data)
    return run.checkpoints / name


@pytest.mark.parametrize("payload", [torch_payload, pickle_payload])
def test_the_planted_payloads_run_their_command_when_loaded_unsafely(tmp_path, payload):
    marker, path = tmp_path / "ran", tmp_path / "last.ckpt"
    path.write_bytes(payload(marker))
    unsafe = f"import torch; torch.load({str(path)!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", unsafe], capture_output=True)
    assert marker.exists()


def test_launch_refuses_a_planted_checkpoint_and_runs_nothing_in_it(
    tmp_path, tiny, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    lines = ["tasks:", "  adding:", *[f"    {k}: {v}" for k, v in tiny["adding"].items()]]
    grid = tmp_path / "planted.yaml"
    grid.write_text("\n".join([*lines, "variants: [none]", "seeds: [0]"]) + "\n")
    (job,) = expand(load_grid(grid))
    run = RunDir.of(job.id, "runs")
    marker = tmp_path / "ran"
    planted = plant(run, dict(job.config), torch_payload(marker))
    data = planted.read_bytes()
    launch = ["launch", str(grid), "--runs-dir", "runs", "--wandb", "disabled"]

    assert main(launch) == 2  # refused before any run starts
    err = capsys.readouterr().err.strip()
    path = f"runs/{job.id}/checkpoints/last.ckpt"
    assert err == (
        f"regbench: error: {path}: {REFUSED} (its pickle calls posix.system, outside the "
        "allow-list; nothing in it was run); delete it to restart the run."
    )
    assert main(["validate", str(grid), "--runs-dir", "runs"]) == 2  # so does validate
    assert not marker.exists(), "the planted pickle ran its command"
    assert planted.read_bytes() == data, "the evidence was removed"
    assert not run.metrics.exists() and not run.attempts.exists() and not run.failed.exists()

    planted.unlink()  # as the message says
    assert main(launch) == 0
    assert run.state() == "done" and not marker.exists()


def test_run_refuses_a_bare_pickle_and_a_planted_best_checkpoint(tmp_path, tiny, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = resolve("adding", "none", "lstm", 0, tiny["adding"])
    sets = [a for k, v in tiny["adding"].items() for a in ("--set", f"{k}={v}")]
    argv = ["run", "--task", "adding", *sets, "--runs-dir", "runs", "--wandb", "disabled"]
    train(config, tmp_path / "real", Runtime(wandb="disabled"))
    real = (tmp_path / "real" / "checkpoints" / "last.ckpt").read_bytes()
    marker = tmp_path / "ran"
    run = RunDir.of(Job(config).id, "runs")
    plant(run, config, pickle_payload(marker))
    assert main(argv) == 2 and not marker.exists()
    (run.checkpoints / "last.ckpt").write_bytes(real)
    plant(run, config, torch_payload(marker), "best.ckpt")
    with pytest.raises(UnsafeCheckpoint, match=f"{run.checkpoints / 'best.ckpt'}: {REFUSED}"):
        run.resume_point()
    assert not marker.exists() and (run.checkpoints / "best.ckpt").exists()


@pytest.mark.parametrize("schedule", ["decay", "plateau"])
def test_a_real_checkpoint_loads_and_a_damaged_one_is_removed(tmp_path, tiny, schedule):
    overrides = {**tiny["adding"], "train.schedule": schedule, "train.optimizer": "sgd"}
    config = resolve("adding", "dropout", "gru", 0, overrides)
    train(config, tmp_path / "real", Runtime(wandb="disabled"))
    real = RunDir(tmp_path / "real").checkpoints / "last.ckpt"
    checkpoint = load_checkpoint(real)
    assert checkpoint["epoch"] == 1 and checkpoint["lr_schedulers"]
    assert any(key.startswith("RandomState") for key in checkpoint["callbacks"])

    for n, damaged in enumerate([b"", real.read_bytes()[: real.stat().st_size // 2]]):
        run = RunDir(tmp_path / f"cut{n}")
        plant(run, config, damaged)
        assert run.resume_point() is None and not run.checkpoints.exists()


def test_no_checkpoint_load_in_regbench_can_run_code():
    """Every torch.load, and every Lightning call given a checkpoint, passes
    weights_only=True."""
    loads = 0
    for path in [p for d in ("bench", "models", "tasks") for p in (ROOT / d).rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            keywords = {k.arg: k.value for k in node.keywords}
            if ast.unparse(node.func) == "torch.load" or "ckpt_path" in keywords:
                safe = keywords.get("weights_only")
                assert isinstance(safe, ast.Constant) and safe.value is True, (path, node.lineno)
                loads += 1
    assert loads >= 4  # rundir's and the data cache's torch.load, Lightning's fit and test
