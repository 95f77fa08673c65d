"""Execution settings are part of a job: threads, device, step mode and devices per run come
from the config, so a grid gives the same job ids and the same numbers whatever the launch
flags (`--workers`), and a job runs with its own config's thread count."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from regbench.cli import main
from regbench.errors import ConfigError
from regbench.launch.slurm import SlurmOptions, check_allocation
from regbench.plan.config import resolve
from regbench.plan.grid import expand, load_grid
from regbench.plan.jobs import Job, config_hash
from regbench.run.rundir import RunDir
from regbench.run.runtime import choose_step_mode, training_work
from regbench.run.train import build_task
from regbench.tasks import get_task

TINY = "{model.hidden_size: 8, train.max_epochs: 2, train.batch_size: 64, train.limit_batches: 6}"
# one full epoch of the protocol's model: big enough that 1 and 2 threads give other numbers
EPOCH = "{train.max_epochs: 1}"


def write_grid(path: Path, task: str = TINY, extra: str = "", seeds: str = "[0, 1]") -> Path:
    path.write_text(
        f"name: {path.stem}\ntasks:\n  seq_digits: {task}\nvariants: [none]\n"
        f"seeds: {seeds}\n{extra}"
    )
    return path


def launch(grid: Path, runs: Path, *flags: str) -> None:
    argv = ["launch", str(grid), "--runs-dir", str(runs), "--wandb", "disabled", *flags]
    assert main(argv) == 0


def numbers(run: Path) -> dict:
    """What a run computed: test and val metrics and every epoch's training loss."""
    result = json.loads((run / "result.json").read_text())
    losses = [e["train/loss"] for e in RunDir(run).epochs()]
    return {"test": result["test"], "val": result["val"], "train_loss": losses}


def threads_used(run: Path) -> int:
    return json.loads((run / "provenance.json").read_text())["hardware"]["torch_threads"]


@pytest.mark.slow
def test_the_number_of_workers_changes_neither_the_jobs_nor_their_numbers(tmp_path):
    """Launched with 1 and 2 workers on the same cores, a grid's jobs compute the same
    numbers (once, threads were divided between the workers, and the numbers differed)."""
    grid = write_grid(tmp_path / "workers.yaml", EPOCH)
    one, two = tmp_path / "one", tmp_path / "two"
    launch(grid, one, "--workers", "1")
    launch(grid, two, "--workers", "2")
    ids = sorted(p.parent.name for p in one.glob("*/done"))
    assert len(ids) == 2 and ids == sorted(p.parent.name for p in two.glob("*/done"))
    assert ids == sorted(job.id for job in expand(load_grid(grid)))
    for job_id in ids:
        assert numbers(one / job_id) == numbers(two / job_id), job_id
        assert threads_used(one / job_id) == threads_used(two / job_id) == 1


@pytest.mark.slow
def test_each_job_runs_with_its_own_thread_count(tmp_path):
    """One worker runs a 1-thread and a 2-thread job of the same grid, each as configured."""
    sweep = "sweep: [{execution.threads: 1}, {execution.threads: 2}]\n"
    grid = write_grid(tmp_path / "threads.yaml", extra=sweep, seeds="[0]")
    jobs = expand(load_grid(grid))
    assert [j.config["execution"]["threads"] for j in jobs] == [1, 2]
    default = resolve("seq_digits", "none", "lstm", 0, yaml.safe_load(TINY))
    assert jobs[0].id == Job(default).id != jobs[1].id
    runs = tmp_path / "runs"
    launch(grid, runs, "--workers", "1")
    assert [threads_used(runs / j.id) for j in jobs] == [1, 2]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("execution.threads", 2),
        ("execution.device", "cuda"),
        ("execution.step_mode", "eager"),
        ("execution.devices", 2),
    ],
)
def test_every_execution_setting_is_part_of_the_id(key, value):
    config = resolve("adding", "none", "lstm", 0)
    assert Job(resolve("adding", "none", "lstm", 0, {key: value})).id != Job(config).id


def test_the_default_execution_keeps_the_ids_of_runs_from_before_the_section():
    config = resolve("adding", "zoneout", "lstm", 0)
    assert config["execution"] == {
        "threads": 1,
        "device": "cpu",
        "step_mode": "auto",
        "devices": 1,
        "flush_denormal": False,
    }
    before = {k: v for k, v in config.items() if k != "execution"}
    assert config_hash(config) == config_hash(before)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"execution.threads": 0}, "execution.threads: must be at least 1"),
        ({"execution.device": "gpu"}, "Valid: cpu, cuda"),
        ({"execution.step_mode": "fast"}, "unknown value for execution.step_mode"),
        ({"execution.thread": 2}, "Did you mean 'execution.threads'"),
    ],
)
def test_bad_execution_settings_are_one_line_errors(overrides, fragment):
    with pytest.raises(ConfigError) as err:
        resolve("adding", "none", "lstm", 0, overrides)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_a_task_protocol_sets_execution_defaults_and_overrides_win(monkeypatch):
    cls = get_task("adding")
    monkeypatch.setattr(cls, "protocol", replace(cls.protocol, execution={"threads": 4}))
    assert resolve("adding", "none", "lstm", 0)["execution"]["threads"] == 4
    config = resolve("adding", "none", "lstm", 0, {"execution.threads": 2})
    assert config["execution"]["threads"] == 2


def test_auto_step_mode_follows_the_config_and_counts_limited_batches():
    overrides = {"train.max_epochs": 3, "model.hidden_size": 8}
    config = resolve("seq_digits", "zoneout", "lstm", 0, overrides)
    task = build_task(config)
    task.setup("fit")
    batches = len(task.train_dataloader())
    full = training_work(config, task)
    assert full == task.step_iterations_per_epoch() * 3
    limited = {**config, "train": {**config["train"], "limit_batches": 2}}
    assert training_work(limited, task) == task.step_iterations_per_epoch() * 2 // batches * 3
    assert choose_step_mode(config, task) == "eager"
    cuda = {**config, "execution": {**config["execution"], "device": "cuda"}}
    assert choose_step_mode(cuda, task) == "graph"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_a_cuda_job_without_a_gpu_is_refused_before_anything_runs(tmp_path, capsys):
    grid = write_grid(tmp_path / "gpu.yaml", extra="overrides: {execution.device: cuda}\n")
    runs = tmp_path / "runs"
    assert main(["launch", str(grid), "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "grid gpu: 2 jobs train on cuda" in err
    assert "execution.device: cpu" in err and not runs.exists()
    argv = ["run", "--task", "adding", "--set", "execution.device=cuda", "--runs-dir", str(runs)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "regbench run: adding · none · lstm · seed 0" in err
    assert not runs.exists()


@pytest.mark.parametrize("flag", ["--threads", "--accelerator", "--step-mode", "--devices"])
def test_the_old_execution_flags_name_their_config_key(flag, capsys):
    assert main(["launch", "quick", flag, "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{flag} is gone" in err and "execution." in err


def test_slurm_refuses_cuda_jobs_without_gpus_and_jobs_over_several_devices():
    cuda = [Job(resolve("adding", "none", "lstm", 0, {"execution.device": "cuda"}))]
    with pytest.raises(ConfigError, match="set gpus_per_task: 1"):
        check_allocation(cuda, SlurmOptions(), "g", print)
    check_allocation(cuda, SlurmOptions(gpus_per_task=1), "g", print)
    ddp = [Job(resolve("adding", "none", "lstm", 0, {"execution.devices": 2}))]
    with pytest.raises(ConfigError, match="trains over 2 devices"):
        check_allocation(ddp, SlurmOptions(gpus_per_task=2), "g", print)
    notes: list[str] = []
    many = [Job(resolve("adding", "none", "lstm", 0, {"execution.threads": 4}))]
    check_allocation(many, SlurmOptions(cpus_per_task=2), "g", notes.append)
    assert notes == ["note: jobs use 4 threads (execution.threads) on 2 CPUs"]


def test_flush_denormal_is_part_of_the_job_and_applied_while_it_trains():
    from regbench.plan.config import resolve
    from regbench.plan.jobs import Job
    from regbench.run.runtime import cpu_threads

    plain = resolve("seq_digits", "none", "lstm", 0)
    flushed = resolve("seq_digits", "none", "lstm", 0, {"execution.flush_denormal": True})
    assert Job(plain).id != Job(flushed).id
    assert resolve("sst2", "none", "lstm", 0)["execution"]["flush_denormal"] is True
    tiny = torch.tensor([1e-40])  # a subnormal float32
    with cpu_threads(flushed):
        assert (tiny * 1.0).item() == 0.0
    with cpu_threads(plain):
        assert (tiny * 1.0).item() != 0.0
