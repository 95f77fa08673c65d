"""The cost estimate before launch (plan/cost.py) from a calibration (perf/calibrate.py):
a tiny grid calibrated here writes a valid file, its estimate adds up per variant, done runs
cost nothing, a device without a calibration says how to make one, and the estimate lies
within a factor 2 of runs trained here on the same machine (each run's within a factor 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from regbench.perf.calibrate import main
from regbench.perf.estimate_check import check, check_lines
from regbench.plan import cost, sizes
from regbench.plan.config import resolve
from regbench.plan.grid import expand, load_grid
from regbench.plan.jobs import Job
from regbench.run.rundir import RunDir
from regbench.run.runtime import Runtime
from regbench.run.train import train

GRID = """
name: tiny_cost
tasks:
  seq_digits: {train.max_epochs: 2, model.hidden_size: 32}
  ptb_word: {model.hidden_size: 8, model.embedding_size: 8, model.num_layers: 1}
variants: [none, zoneout]
undefined: skip
seeds: [0]
"""


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory) -> tuple[list[Job], Path]:
    """The tiny grid's jobs and the folder of its CPU calibration (a few seconds: seq_digits
    from its own batches, ptb_word from synthetic ones, no data needed)."""
    root = tmp_path_factory.mktemp("cost")
    grid = root / "tiny_cost.yaml"
    grid.write_text(GRID)
    out = root / "throughput"
    argv = ["--grids", str(grid), "--out", str(out), "--steps", "12", "--warmup", "2"]
    assert main([*argv, "--eval-steps", "2", "--row-seconds", "3", "--seconds", "60"]) == 0
    return expand(load_grid(grid)), out


def test_calibration_writes_one_row_per_job_shape(calibrated):
    jobs, out = calibrated
    data = json.loads((out / "cpu.json").read_text())
    assert data["schema"] == cost.SCHEMA and data["device"] == "cpu"
    assert data["machine"]["torch"] and data["machine"]["gpu"] is None
    keys = {sizes.key_id(sizes.row_key(j.config)) for j in jobs}
    assert {sizes.key_id(r["key"]) for r in data["rows"]} == keys
    for row in data["rows"]:
        assert row["train_step_s"] > 0 and row["eval_batch_s"] > 0, row
        assert row["tokens_per_step"] > 0 and row["grids"] == ["tiny_cost"]
    inputs = {r["key"]["task"]: r["inputs"] for r in data["rows"]}
    assert inputs["ptb_word"].startswith("synthetic") and "first" in inputs["seq_digits"]


def test_rows_past_the_time_budget_are_left_out(tmp_path, capsys):
    assert main(["--grids", "quick", "--out", str(tmp_path), "--seconds", "0"]) == 0
    assert not (tmp_path / "cpu.json").exists()
    assert "seq_digits · none · lstm: not measured (--seconds 0 spent)" in capsys.readouterr().out


def test_estimate_per_variant_adds_up_to_the_grid(calibrated):
    jobs, out = calibrated
    e = cost.estimate(jobs, "cpu", folder=out)
    assert not e.unknown and all(c.seconds > 0 for c in e.costs)
    per_variant = e.per_variant()
    assert set(per_variant) == {"none", "zoneout"}
    assert all(seconds > 0 and runs == 2 for seconds, runs, _ in per_variant.values())
    assert sum(s for s, *_ in per_variant.values()) == pytest.approx(e.seconds)
    ptb = next(c for c in e.costs if c.job.config["task"]["name"] == "ptb_word")
    row = cost.load_calibration("cpu", out).find(sizes.row_key(ptb.job.config), None)[0]
    assert ptb.train_s == pytest.approx(13 * 2324 * row["train_step_s"])  # 13 epochs of PTB


def test_done_jobs_cost_nothing(calibrated):
    jobs, out = calibrated
    full = cost.estimate(jobs, "cpu", folder=out)
    first = full.costs[0]
    part = cost.estimate(jobs, "cpu", done={first.job.id}, folder=out)
    assert part.costs[0].seconds == 0 and part.done == 1
    assert part.seconds == pytest.approx(full.seconds - first.seconds)
    lines = cost.describe(jobs, {j.id for j in jobs}, ["cpu"], folder=out)
    assert lines == [f"cost on cpu: all {len(jobs)} runs done"]


def test_a_device_without_calibration_says_how_to_make_one(calibrated):
    jobs, out = calibrated
    lines = cost.describe(jobs, grid="tiny_cost", folder=out)
    assert lines[0].startswith("cost on cpu: 4 of 4 runs left")
    assert any(ln.startswith(f"  how: from {out / 'cpu.json'} measured on ") for ln in lines)
    assert lines[-1] == (
        "cost on cuda-nvidia-h200: no calibration for cuda-nvidia-h200: run python -m "
        "regbench.perf.calibrate --device cuda --grids tiny_cost on it"
    )
    assert all(c.why == "no calibration" for c in cost.estimate(jobs, "cuda-x", folder=out).costs)


def test_other_sizes_are_scaled_by_tokens_and_unmeasured_shapes_unknown(calibrated):
    jobs, out = calibrated
    base = next(j for j in jobs if j.config["task"]["name"] == "seq_digits")
    overrides = {"train.max_epochs": 2, "model.hidden_size": 32, "train.batch_size": 64}
    bigger = Job(resolve("seq_digits", base.config["variant"], "lstm", 0, overrides))
    calibration = cost.load_calibration("cpu", out)
    small, large = cost.job_cost(base, calibration), cost.job_cost(bigger, calibration)
    assert large.scaled and not small.scaled
    # twice the tokens per step, half the steps (34 → 17 batches an epoch): the same time
    assert large.train_s == pytest.approx(small.train_s * 17 * 2 / 34)
    gru = Job(resolve("seq_digits", "none", "gru", 0, overrides))
    assert cost.job_cost(gru, calibration).why == "not calibrated"


def test_batches_come_from_declared_split_sizes():
    ptb = sizes.batches(resolve("ptb_word", "none", "lstm", 0))  # 929,589 tokens in 20 rows
    assert (ptb.train, ptb.val, ptb.test, ptb.approximate) == (2324, 369, 413, False)
    sst = sizes.batches(resolve("sst2", "none", "lstm", 0))  # 6,920 sentences, batch 25
    assert (sst.train, sst.val, sst.test) == (277, 4, 8)
    assert sizes.batches(resolve("ptb_char", "none", "lstm", 0)).approximate  # "about 5.0M"
    more_val = sizes.batches(resolve("pmnist", "none", "lstm", 0, {"task.params.n_val": 10_000}))
    assert (more_val.train, more_val.val, more_val.test) == (782, 10, 10)  # 50,000 / 64 …
    longer = resolve("imdb", "none", "lstm", 0, {"task.params.max_len": 200})
    assert sizes.batches(longer) is None  # declared for the default parameters only
    assert sizes.declared_sizes("about 5.0M / 394k / 443k characters") == [
        5_000_000,
        394_000,
        443_000,
    ]
    assert sizes.shape(resolve("sst2", "none", "lstm", 0)) is None  # lengths need the data


@pytest.mark.slow
def test_estimate_is_within_a_factor_two_of_runs_trained_here(calibrated, tmp_path):
    """Both timed on this (shared, noisy) machine minutes apart: the grid's estimate of
    training and validation within a factor 2 of the runs' per-epoch times, each run's
    within a factor 3."""
    jobs, out = calibrated
    trained = [j for j in jobs if j.config["task"]["name"] == "seq_digits"]
    for job in trained:
        train(dict(job.config), RunDir.of(job.id, tmp_path).path, Runtime(wandb="disabled"))
    compared = check(jobs, tmp_path, None, "cpu", out)
    assert [j.id for j, *_ in compared] == [j.id for j in trained]
    estimated, measured = sum(e for _, e, _ in compared), sum(m for *_, m in compared)
    report = check_lines(compared, verbose=True)
    assert 0.5 < estimated / measured < 2.0, report
    assert all(1 / 3 < e / m < 3 for _, e, m in compared), report
