"""Report statistics against scipy computed here, failure and pending counts, n = 1."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from fake_runs import done, failed, write_grid
from scipy import stats

from regbench.report.stats import describe, gain_pct, welch
from regbench.report.write import write_report

GRID = "name: g\ntasks: [seq_digits]\nvariants: [none, dropout]\nseeds: [0, 1, 2, 3]\n"
NONE = [0.81, 0.84, 0.86, 0.90]
DROPOUT = [0.88, 0.91, 0.87, 0.93]


def t_interval(values: list[float]) -> tuple[float, float]:
    n, mean = len(values), float(np.mean(values))
    half = stats.t.ppf(0.975, n - 1) * np.std(values, ddof=1) / math.sqrt(n)
    return mean - half, mean + half


def test_describe_matches_the_t_interval():
    s = describe(NONE)
    assert s.n == 4
    assert s.mean == pytest.approx(np.mean(NONE))
    assert s.std == pytest.approx(np.std(NONE, ddof=1))
    assert (s.ci_low, s.ci_high) == pytest.approx(t_interval(NONE))


def test_undefined_statistics_are_nan_not_zero():
    one = describe([0.5])
    assert one.n == 1 and one.mean == 0.5
    assert math.isnan(one.std) and math.isnan(one.ci_low) and math.isnan(one.ci_high)
    assert describe([]).n == 0 and math.isnan(describe([]).mean)
    assert welch([0.5], NONE)[0] == pytest.approx(0.5 - np.mean(NONE))
    assert math.isnan(welch([0.5], NONE)[1])


def test_welch_matches_scipy():
    diff, p = welch(DROPOUT, NONE)
    assert diff == pytest.approx(np.mean(DROPOUT) - np.mean(NONE))
    assert p == pytest.approx(stats.ttest_ind(DROPOUT, NONE, equal_var=False).pvalue)


def test_gain_respects_the_direction():
    assert gain_pct(0.9, 0.8, "max") == pytest.approx(12.5)
    assert gain_pct(0.9, 0.8, "min") == pytest.approx(-12.5)


def test_report_numbers_match_scipy(tmp_path):
    grid, jobs = write_grid(tmp_path / "g.yaml", GRID)
    runs = tmp_path / "runs"
    for job, value in zip(jobs, NONE + DROPOUT, strict=True):
        time = 10.0 if job.config["variant"] == "none" else 15.0
        done(job, runs, value, train_time_s=time)
    write_report(grid, jobs, runs, tmp_path / "out", "pytest")
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["rows"]
    base, drop = rows
    assert drop["n"] == 4 and drop["test_values"] == DROPOUT
    assert drop["test_mean"] == pytest.approx(np.mean(DROPOUT))
    assert drop["test_std"] == pytest.approx(np.std(DROPOUT, ddof=1))
    assert (drop["test_ci95_low"], drop["test_ci95_high"]) == pytest.approx(t_interval(DROPOUT))
    assert drop["delta_vs_none"] == pytest.approx(np.mean(DROPOUT) - np.mean(NONE))
    scipy_p = stats.ttest_ind(DROPOUT, NONE, equal_var=False).pvalue
    assert drop["p_welch"] == pytest.approx(scipy_p)
    assert drop["time_overhead_pct"] == pytest.approx(50.0)
    assert base["delta_vs_none"] is None and base["p_welch"] is None
    table = (tmp_path / "out" / "table.md").read_text()
    low, high = t_interval(DROPOUT)
    assert f"| [{low:.4f}, {high:.4f}] | 4 | +{np.mean(DROPOUT) - np.mean(NONE):.4f} |" in table
    assert f"| {scipy_p:.3f} |" in table and "Student's t" in table and "Welch" in table


def test_a_failed_and_a_pending_seed_are_counted_not_dropped(tmp_path):
    grid, jobs = write_grid(tmp_path / "g.yaml", GRID)
    runs = tmp_path / "runs"
    none, dropout = jobs[:4], jobs[4:]
    for job, value in zip(none, NONE, strict=True):
        done(job, runs, value)
    done(dropout[0], runs, 0.88)
    done(dropout[1], runs, 0.91)
    failed(dropout[2], runs, kind="diverged", error="diverged: loss is nan at step 3")
    # dropout[3] never ran: pending
    write_report(grid, jobs, runs, tmp_path / "out", "pytest")
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["rows"]
    drop = rows[1]
    assert drop["n"] == 2 and drop["failed"] == 1 and drop["pending"] == 1
    assert drop["failures"] == {"diverged": 1}
    assert drop["run_ids"] == [j.id for j in dropout]
    assert drop["done_ids"] == [dropout[0].id, dropout[1].id]
    assert drop["test_mean"] == pytest.approx(np.mean([0.88, 0.91]))
    table = (tmp_path / "out" / "table.md").read_text()
    assert "| 2 | +" in table and "| 1 diverged | 1 |" in table
    assert f"`{dropout[2].id}`, diverged): diverged: loss is nan at step 3" in table
    with open(tmp_path / "out" / "results.csv") as f:
        line = list(csv.DictReader(f))[1]
    assert (line["failed_diverged"], line["failed_error"], line["pending"]) == ("1", "0", "1")


def test_one_seed_shows_the_std_and_ci_as_undefined(tmp_path):
    grid, jobs = write_grid(
        tmp_path / "g.yaml", "tasks: [seq_digits]\nvariants: [none, dropout]\nseeds: [0]\n"
    )
    runs = tmp_path / "runs"
    done(jobs[0], runs, 0.8)
    done(jobs[1], runs, 0.85)
    write_report(grid, jobs, runs, tmp_path / "out", "pytest")
    table = (tmp_path / "out" / "table.md").read_text()
    assert "| 0.8500 ± n/a | n/a (n = 1) | 1 | +0.0500 | – |" in table
    row = json.loads((tmp_path / "out" / "results.json").read_text())["rows"][1]
    assert row["test_std"] is None and row["test_ci95_low"] is None and row["p_welch"] is None
