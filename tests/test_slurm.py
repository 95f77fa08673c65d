"""The SLURM launcher on a real one-node cluster with two fake GPUs (`.ci/local-slurm.sh
start`; skipped when no cluster answers). A throwaway task plugin (tests/probe_task.py)
makes runs that succeed, raise, or kill their own process; jobs run one per GPU."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from probe import probe_installed
from regbench.errors import ConfigError
from regbench.launch.slurm import SlurmOptions, launch_slurm, load_slurm_config
from regbench.plan.grid import Grid, expand, load_grid
from regbench.plan.jobs import Job
from regbench.report.write import write_report
from regbench.run.job import LaunchSummary
from regbench.run.rundir import RunDir, read_json
from regbench.run.runtime import Runtime

pytestmark = pytest.mark.slow  # end-to-end runs; `make test-slow`

CLUSTER_DIR = Path(os.environ.get("REGBENCH_SLURM_DIR", "/tmp/regbench-slurm"))
RUNTIME = Runtime(wandb="disabled")
OPTIONS = SlurmOptions(time_min=30, gpus_per_task=1, cpus_per_task=1)
ADDING = (
    "{task.params.T: 12, task.params.n_train: 96, task.params.n_val: 32, "
    "task.params.n_test: 32, model.hidden_size: 8, train.max_epochs: 2}"
)
GRID = f"""name: slurm-test
tasks:
  probe: {{task.params.raise_seed: 2, task.params.crash_seed: 3}}
  adding: {ADDING}
variants: [none]
seeds: [0, 1, 2, 3]
"""


# ----------------------------------------------------------------------------- the cluster
def slurm_conf() -> str | None:
    """$SLURM_CONF, or the one named in the env file of .ci/local-slurm.sh."""
    if os.environ.get("SLURM_CONF"):
        return os.environ["SLURM_CONF"]
    env_file = CLUSTER_DIR / "env.sh"
    if not env_file.is_file():
        return None
    for word in shlex.split(env_file.read_text(), comments=True):
        if word.startswith("SLURM_CONF="):
            return word.removeprefix("SLURM_CONF=")
    return None


def why_no_cluster() -> str | None:
    """None when a SLURM cluster with at least two GPUs answers; else why not."""
    start = "start one with `.ci/local-slurm.sh start`"
    if shutil.which("sinfo") is None:
        return f"no SLURM client (sinfo) installed; {start}"
    conf = slurm_conf()
    if conf is None:
        return f"SLURM_CONF is unset and {CLUSTER_DIR}/env.sh does not exist; {start}"
    env = {**os.environ, "SLURM_CONF": conf}
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%T %G"], env=env, capture_output=True, text=True, timeout=10
        )
    except subprocess.TimeoutExpired:
        return f"the SLURM controller of {conf} does not answer; {start}"
    if out.returncode != 0 or not out.stdout.strip():
        return f"sinfo fails with {conf}: {out.stderr.strip()[:200]}; {start}"
    gpus = sum(int(n) for n in re.findall(r"gpu(?::\w+)?:(\d+)", out.stdout))
    if gpus < 2:
        return f"the cluster of {conf} declares {gpus} GPUs, the test needs 2"
    return None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Path]:
    """The environment SLURM jobs inherit: the cluster's SLURM_CONF and the probe plugin on
    PYTHONPATH (registered in this process too, and unregistered afterwards)."""
    reason = why_no_cluster()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("slurm")
    with pytest.MonkeyPatch.context() as mp, probe_installed(root, mp):
        mp.setenv("SLURM_CONF", slurm_conf())
        mp.setenv("REGBENCH_CACHE", str(root / "cache"))
        mp.setenv("WANDB_MODE", "disabled")
        yield root


@dataclass
class Launched:
    grid: Grid
    jobs: list[Job]
    runs: Path
    summary: LaunchSummary
    log: list[str]
    seconds: float

    def job(self, task: str, seed: int) -> Job:
        return next(j for j in self.jobs if j.config["task"]["name"] == task and j.seed == seed)


def launch_in_thread(jobs: list[Job], runs: Path, options: SlurmOptions, limit_s: float) -> Any:
    """launch_slurm, failing the test (instead of hanging it) if it has not returned in time."""
    box: dict[str, Any] = {"log": []}

    def target() -> None:
        try:
            box["summary"] = launch_slurm(jobs, runs, RUNTIME, options, echo=box["log"].append)
        except BaseException as err:
            box["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(limit_s)
    assert not thread.is_alive(), f"launch_slurm still waiting after {limit_s:.0f} s: {box['log']}"
    if "error" in box:
        raise box["error"]
    return box["summary"], box["log"], time.monotonic() - started


@pytest.fixture(scope="module")
def launched(cluster: Path) -> Launched:
    (cluster / "grid.yaml").write_text(GRID)
    grid = load_grid(cluster / "grid.yaml")
    jobs = expand(grid)
    runs = cluster / "runs"
    summary, log, seconds = launch_in_thread(jobs, runs, OPTIONS, limit_s=150)
    return Launched(grid, jobs, runs, summary, log, seconds)


def sacct_tasks(array_id: str) -> list[dict[str, str]]:
    """The array's tasks as accounting has them, once it has every start and end (slurmdbd
    records an end a moment after the task's result is on disk)."""
    command = [
        "sacct",
        "-n",
        "-P",
        "-X",
        f"--jobs={array_id}",
        "--format=JobID,Start,End,AllocTRES",
    ]
    deadline = time.monotonic() + 30
    while True:
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        keys = ("id", "start", "end", "tres")
        tasks = [dict(zip(keys, line.split("|"), strict=True)) for line in out.splitlines()]
        if all(t["end"] != "Unknown" for t in tasks) or time.monotonic() > deadline:
            return tasks
        time.sleep(1)


def max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    """The most half-open intervals [start, end) holding one instant."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = peak = 0
    for _, step in events:  # at equal times, ends (-1) sort before starts
        running += step
        peak = max(peak, running)
    return peak


# ----------------------------------------------------------------------------- tests
def test_every_job_ends_done_or_failed_without_hanging(launched: Launched) -> None:
    done = {(j.config["task"]["name"], j.seed) for j in launched.summary.done}
    failed = {(j.config["task"]["name"], j.seed): e for j, e in launched.summary.failed}
    assert done == {("adding", s) for s in range(4)} | {("probe", 0), ("probe", 1)}
    assert failed[("probe", 2)] == "RuntimeError: probe raises for data seed 2"
    assert "ended without a result (state FAILED, exit code 3)" in failed[("probe", 3)]
    assert launched.summary.skipped == 0 and not launched.summary.busy
    assert launched.seconds < 120, launched.log


def test_one_job_per_gpu(launched: Launched) -> None:
    placements = {}
    spans = []
    for job in launched.summary.done:
        prov = read_json(RunDir.of(job.id, launched.runs).provenance)
        placements[job.id] = prov["placement"]
        spans.append(
            (
                datetime.fromisoformat(prov["started"]),
                datetime.fromisoformat(prov["finished"]),
                prov["placement"]["CUDA_VISIBLE_DEVICES"],
            )
        )
    assert {p["CUDA_VISIBLE_DEVICES"] for p in placements.values()} <= {"0", "1"}
    for a in spans:  # runs that trained at the same time had different GPUs
        for b in spans:
            if a is not b and a[0] < b[1] and b[0] < a[1]:
                assert a[2] != b[2], (a, b)
    (array_id,) = {p["SLURM_ARRAY_JOB_ID"] for p in placements.values()}
    tasks = sacct_tasks(array_id)
    assert len(tasks) == len(launched.jobs)
    assert all("gres/gpu=1" in t["tres"] for t in tasks), tasks
    intervals = [
        (datetime.fromisoformat(t["start"]), datetime.fromisoformat(t["end"])) for t in tasks
    ]
    assert max_overlap(intervals) == 2, tasks  # two GPUs, both used, never a third job


def test_a_job_that_raises_is_failed_with_its_traceback(launched: Launched) -> None:
    failed = read_json(RunDir.of(launched.job("probe", 2).id, launched.runs).failed)
    assert failed["kind"] == "error"
    assert failed["error"] == "RuntimeError: probe raises for data seed 2"
    assert "in build_splits" in failed["traceback"]
    assert "RuntimeError: probe raises" in failed["traceback"]


def test_a_job_that_dies_is_failed_with_its_slurm_state(launched: Launched) -> None:
    run = RunDir.of(launched.job("probe", 3).id, launched.runs)
    failed = read_json(run.failed)
    assert failed["kind"] == "crashed"
    assert re.fullmatch(
        r"SLURM job \d+_\d+ ended without a result \(state FAILED, exit code 3\)", failed["error"]
    )
    assert "exit code 3" in failed["traceback"]  # the tail of the task's stderr
    assert run.state() == "failed"


def test_collect_and_report(launched: Launched, tmp_path: Path) -> None:
    paths = write_report(launched.grid, launched.jobs, launched.runs, tmp_path, "pytest")
    assert {p.name for p in paths} >= {"table.md", "results.json"}
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert [(r["task"], r["n"], r["failed"]) for r in rows] == [
        ("probe", 2, 2),
        ("adding", 4, 0),
    ]
    table = (tmp_path / "table.md").read_text()
    assert "| probe |" in table and "| adding |" in table


def test_sbatch_refusal_is_a_config_error(cluster: Path) -> None:
    (cluster / "one.yaml").write_text(f"tasks:\n  adding: {ADDING}\nvariants: [none]\nseeds: [0]\n")
    jobs = expand(load_grid(cluster / "one.yaml"))
    with pytest.raises(ConfigError, match=r"sbatch refused the job array: .*invalid partition"):
        launch_slurm(jobs, cluster / "refused", RUNTIME, SlurmOptions(partition="nope"))


# ----------------------------------------------------------------------------- requeue
@pytest.mark.skipif(
    os.environ.get("REGBENCH_SLOW") != "1",
    reason="takes ~2.5 min (SLURM holds a requeued job ~120 s); set REGBENCH_SLOW=1",
)
def test_a_preempted_job_is_requeued_and_resumes(cluster: Path) -> None:
    grid_file = cluster / "slow.yaml"
    grid_file.write_text(
        "name: slurm-requeue\ntasks:\n"
        "  probe: {task.params.batch_sleep: 0.5, train.max_epochs: 6}\n"
        "variants: [none]\nseeds: [7]\n"
    )
    (job,) = expand(load_grid(grid_file))
    runs = cluster / "slow-runs"
    run = RunDir.of(job.id, runs)
    holder: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: holder.update(out=launch_in_thread([job], runs, OPTIONS, limit_s=280)),
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + 90
    while not (run.checkpoints / "last.ckpt").exists():
        assert time.monotonic() < deadline, "the job wrote no checkpoint in 90 s"
        time.sleep(0.5)
    task_id = _running_task()
    # Preemption as submitit simulates it: SIGTERM, then its USR2. Lightning stops training
    # at the next batch on SIGTERM; the task must still be there to requeue on USR2.
    subprocess.run(["scancel", "--signal=TERM", task_id], check=True)
    time.sleep(3)
    subprocess.run(["scancel", "--signal=USR2", task_id], check=True)
    thread.join(300)
    summary, log, _ = holder["out"]
    assert [j.id for j in summary.done] == [job.id], log
    attempts = read_json(run.attempts)
    assert attempts["attempts"] == 2 and attempts["resumed_from_epochs"], attempts
    assert read_json(run.provenance)["placement"]["SLURM_RESTART_COUNT"] == "1"
    assert [e["epoch"] for e in run.epochs()] == list(range(6))


def _running_task() -> str:
    out = subprocess.run(
        ["squeue", "-h", "--array", "--states=RUNNING", "--name=regbench", "--format=%i"],
        capture_output=True,
        text=True,
        check=True,
    )
    (task,) = out.stdout.split()
    return task


# ----------------------------------------------------------------------------- options file
def test_slurm_config_file(tmp_path: Path) -> None:
    path = tmp_path / "slurm.yaml"
    path.write_text(
        "partition: gpu\ntime_min: 240\ngpus_per_task: 1\ncpus_per_task: 4\nmem_gb: 15.5\n"
        "array_parallelism: 8\nextra: {qos: high, reservation: bench}\n"
    )
    options = load_slurm_config(path)
    assert options == SlurmOptions(
        partition="gpu",
        time_min=240,
        gpus_per_task=1,
        cpus_per_task=4,
        mem_gb=15.5,
        array_parallelism=8,
        extra={"qos": "high", "reservation": "bench"},
    )
    path.write_text("")
    assert load_slurm_config(path) == SlurmOptions()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("partiton: gpu\n", "unknown SLURM config key 'partiton'. Did you mean 'partition'?"),
        ("time_min: 1h\n", "time_min must be an integer, got '1h'"),
        ("gpus_per_task: true\n", "gpus_per_task must be an integer, got True"),
        ("array_parallelism: 0\n", "array_parallelism must be positive"),
        ("extra: {time: 10}\n", "extra.time is not allowed: set 'time_min' at the top level"),
        ("extra: [qos]\n", "extra must be a mapping"),
        ("- partition\n", "a SLURM config must be a mapping"),
        ("partition: [\n", "invalid YAML"),
    ],
)
def test_slurm_config_errors_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "slurm.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_slurm_config(path)
    assert str(err.value).startswith(str(path)) and message in str(err.value)
    assert "\n" not in str(err.value)
