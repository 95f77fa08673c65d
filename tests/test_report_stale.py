"""Stale rows: a bumped version marks only its rows stale, keeps their previous numbers until
rerun, and a relaunch runs only their jobs; reports written before manifests still compare."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
from fake_runs import done, write_grid

from regbench.launch.grid import pending
from regbench.models.variants.zoneout import Zoneout
from regbench.plan.grid import expand, load_grid
from regbench.plan.jobs import Job
from regbench.report.write import write_report
from regbench.run.rundir import RunDir
from regbench.run.train import Runtime, train

CPU = Runtime(wandb="disabled")


def rows(out: Path) -> dict[str, dict]:
    return {r["variant"]: r for r in json.loads((out / "results.json").read_text())["rows"]}


@pytest.mark.slow
def test_a_bumped_variant_version_marks_only_its_rows_stale(tmp_path, tiny, monkeypatch):
    lines = ["name: tiny", "tasks:", "  seq_digits:"]
    lines += [f"    {k}: {v}" for k, v in tiny["seq_digits"].items()]
    path = tmp_path / "tiny.yaml"
    path.write_text("\n".join([*lines, "variants: [none, zoneout]", "seeds: [0, 1]", ""]))
    grid, runs, out = load_grid(path), tmp_path / "runs", tmp_path / "results" / "tiny"
    jobs = expand(grid)
    for job in jobs:
        train(job.config, RunDir.of(job.id, runs).path, CPU)
    write_report(grid, jobs, runs, out, "first")
    first = rows(out)

    old = Zoneout.version
    monkeypatch.setattr(Zoneout, "version", old + 1)
    bumped = expand(load_grid(path))
    zoneout = [j for j in bumped if j.config["variant"] == "zoneout"]
    assert [j.id for j in bumped if j.config["variant"] == "none"] == first["none"]["run_ids"]
    assert not {j.id for j in zoneout} & set(first["zoneout"]["run_ids"])
    assert pending(bumped, runs, retry_failed=False) == zoneout  # a relaunch runs only these

    for command in ("second", "third"):  # still stale in a report of the stale report
        write_report(grid, bumped, runs, out, command)
        now = rows(out)
        assert (
            now["none"]["stale"] is None and now["none"]["test_mean"] == first["none"]["test_mean"]
        )
        stale = now["zoneout"]["stale"]
        assert stale["changes"] == [f"versions.regularizers.zoneout: {old} → {old + 1}"]
        assert stale["previous_ids"] == first["zoneout"]["run_ids"]
        assert now["zoneout"]["numbers_from"] == "previous" and now["zoneout"]["pending"] == 2
        assert now["zoneout"]["test_mean"] == first["zoneout"]["test_mean"]
        assert now["zoneout"]["n"] == 2 and now["zoneout"]["run_ids"] == [j.id for j in zoneout]
    table = (out / "table.md").read_text()
    assert f"† stale (versions.regularizers.zoneout: {old} → {old + 1}): previous numbers" in table
    manifest = json.loads((out / "manifest.json").read_text())
    assert [c["stale"] is not None for c in manifest["rows"]] == [False, True]
    assert "| `tiny` | 2 | 2 / 4 | 1 |" in (out.parent / "README.md").read_text()

    for job in pending(bumped, runs, retry_failed=False):
        train(job.config, RunDir.of(job.id, runs).path, CPU)
    assert pending(bumped, runs, retry_failed=False) == []
    write_report(grid, bumped, runs, out, "fourth")
    rerun = rows(out)["zoneout"]
    assert rerun["stale"] is None and rerun["numbers_from"] == "current"
    assert rerun["done_ids"] == [j.id for j in zoneout]
    assert "stale" not in (out / "table.md").read_text().split("## Cost")[0]


GRID = "name: legacy\ntasks: [seq_digits]\nvariants: [none, dropout]\nseeds: [0, 1]\n"


def legacy_report(out: Path, old_jobs: list[Job], values: list[float]) -> None:
    """results.json as reports wrote it before manifests: run ids and values only."""
    out.mkdir(parents=True)
    by_row: dict[tuple, list[Job]] = {}
    for job in old_jobs:
        by_row.setdefault(job.row_key, []).append(job)
    legacy = []
    for (task, cell, variant, point), row_jobs in by_row.items():
        legacy.append(
            {
                "task": task,
                "cell": cell,
                "variant": variant,
                "point": point,
                "metric": "accuracy",
                "direction": "max",
                "n": len(row_jobs),
                "failed": 0,
                "pending": 0,
                "test_values": [values[old_jobs.index(j)] for j in row_jobs],
                "val_values": [values[old_jobs.index(j)] for j in row_jobs],
                "seeds": [j.seed for j in row_jobs],
                "run_ids": [j.id for j in row_jobs],
                "num_parameters": 1234,
            }
        )
    (out / "results.json").write_text(json.dumps({"grid": "legacy", "rows": legacy}))


def older(job: Job, harness: int) -> Job:
    config = copy.deepcopy(dict(job.config))
    config["versions"]["harness"] = harness
    return Job(config, job.point)


def test_a_report_from_before_manifests_is_compared_through_its_run_dirs(tmp_path):
    grid, jobs = write_grid(tmp_path / "legacy.yaml", GRID)
    runs, out = tmp_path / "runs", tmp_path / "out"
    harness = jobs[0].config["versions"]["harness"]
    old_jobs = [older(j, harness - 1) for j in jobs]
    values = [0.80, 0.82, 0.90, 0.94]
    for job, value in zip(old_jobs, values, strict=True):
        done(job, runs, value)
    legacy_report(out, old_jobs, values)
    write_report(grid, jobs, runs, out, "regenerate")
    now = rows(out)
    assert now["dropout"]["stale"]["changes"] == [f"versions.harness: {harness - 1} → {harness}"]
    assert now["dropout"]["test_values"] == [] and now["dropout"]["pending"] == 2
    assert now["dropout"]["stale_row"]["test_values"] == [0.90, 0.94]
    assert now["dropout"]["delta_vs_none"] == pytest.approx(0.92 - 0.81)
    assert now["dropout"]["stale_row"]["train_time_s"] == [10.0, 10.0]  # from the run dirs
    assert now["dropout"]["num_parameters"] == 1234 and now["dropout"]["memory_kind"] == "cpu"

    shutil.rmtree(runs)  # the old run directories are gone: the stored numbers remain
    write_report(grid, jobs, runs, out, "again")
    assert rows(out)["none"]["stale_row"]["test_values"] == [0.80, 0.82]


def test_a_longer_seed_list_is_not_stale(tmp_path):
    grid, jobs = write_grid(tmp_path / "g.yaml", GRID)
    runs, out = tmp_path / "runs", tmp_path / "out"
    for job, value in zip(jobs, [0.8, 0.82, 0.9, 0.94], strict=True):
        done(job, runs, value)
    write_report(grid, jobs, runs, out, "first")
    grid, more = write_grid(tmp_path / "g.yaml", GRID.replace("[0, 1]", "[0, 1, 2]"))
    write_report(grid, more, runs, out, "second")
    now = rows(out)
    assert now["none"]["stale"] is None and now["none"]["n"] == 2 and now["none"]["pending"] == 1


def test_records_of_configurations_the_grid_no_longer_runs_are_counted_not_used(tmp_path):
    grid, jobs = write_grid(tmp_path / "g.yaml", GRID)
    runs, out = tmp_path / "runs", tmp_path / "out"
    harness = jobs[0].config["versions"]["harness"]
    for job, value in zip(jobs, [0.8, 0.82, 0.9, 0.94], strict=True):
        done(older(job, harness - 1), runs, value)
    write_report(grid, [older(j, harness - 1) for j in jobs], runs, out, "first")
    write_report(grid, jobs, runs, out, "stale")  # the old records back the stale rows
    assert json.loads((out / "manifest.json").read_text())["runs"]["superseded"] == 0

    for job, value in zip(jobs, [0.7, 0.72, 0.8, 0.84], strict=True):
        done(job, runs, value)
    write_report(grid, jobs, runs, out, "rerun")
    assert json.loads((out / "manifest.json").read_text())["runs"]["superseded"] == 4
    assert rows(out)["none"]["test_values"] == [0.7, 0.72]
    assert "`records/` also keeps 4 records of configurations" in (out / "table.md").read_text()
