"""Tuned rows: search points per variant, selection on validation only, the selected point
trained with every seed, and Holm-corrected p-values against `none`."""

from __future__ import annotations

import json
import math
import shutil

import pytest
from fake_runs import done, write_grid

from regbench.errors import ConfigError
from regbench.plan.grid import expand_tuned, unique
from regbench.plan.search import TUNED
from regbench.report.stats import holm
from regbench.report.write import write_report
from regbench.run.records import from_run_dir
from regbench.run.rundir import RunDir

GRID = """name: tuned
tasks: [seq_digits]
variants: [none, dropout, zoneout]
seeds: [0, 1, 2]
search:
  seeds: [0]
  space:
    dropout: {regularizers.dropout.p_output: [0.25, 0.75]}
    zoneout:
      - {regularizers.zoneout.z_c: 0.1, regularizers.zoneout.z_h: 0.1}
      - {regularizers.zoneout.z_c: 0.15, regularizers.zoneout.z_h: 0.15}
"""


def _lookup(runs):
    return lambda job: from_run_dir(RunDir.of(job.id, runs))


def test_search_jobs_have_the_same_budget_and_share_jobs_with_default_rows(tmp_path):
    grid, jobs = write_grid(tmp_path / "g.yaml", GRID)
    search = [j for j in jobs if j.point.startswith("search: ")]
    assert grid.search.budget() == "2 points × 1 seed (0) per variant"
    assert len(search) == 4 and all(j.seed == 0 for j in search)
    # zoneout's second point is seq_digits' default: that search job is the default row's seed 0
    default_zoneout = next(j for j in jobs if j.config["variant"] == "zoneout" and not j.point)
    assert search[3].id == default_zoneout.id
    assert len(unique(jobs)) == len(jobs) - 1
    assert expand_tuned(grid, _lookup(tmp_path / "runs")) == ([], [])  # nothing ran yet


def test_the_selection_uses_validation_only_and_the_tuned_row_reuses_the_search_seed(tmp_path):
    grid, jobs = write_grid(tmp_path / "g.yaml", GRID)
    runs = tmp_path / "runs"
    search = {j.point: j for j in jobs if j.point.startswith("search: ") and "p_output" in j.point}
    low, high = search["search: p_output=0.25"], search["search: p_output=0.75"]
    done(low, runs, test=0.95, val=0.80)  # best test, worse validation
    done(high, runs, test=0.85, val=0.90)
    for job in jobs:
        if job.config["variant"] == "zoneout" and job.point.startswith("search: "):
            done(job, runs, test=0.8, val=0.8)
    selections, tuned = expand_tuned(grid, _lookup(runs))
    dropout = next(s for s in selections if s.variant == "dropout")
    assert dropout.best.label == "p_output=0.75"
    assert [s.val_mean for s in dropout.scores] == [0.80, 0.90]
    rows = [j for j in tuned if j.config["variant"] == "dropout"]
    assert [j.seed for j in rows] == [0, 1, 2]
    assert {j.point for j in rows} == {TUNED + "p_output=0.75"}
    assert rows[0].id == high.id  # seed 0 of the tuned row is the search job
    assert all(j.config["regularizers"]["dropout"]["p_output"] == 0.75 for j in rows)


def test_a_point_with_a_failed_seed_is_not_eligible(tmp_path):
    from fake_runs import failed

    grid, jobs = write_grid(tmp_path / "g.yaml", GRID)
    runs = tmp_path / "runs"
    points = [j for j in jobs if j.point.startswith("search: ") and "p_output" in j.point]
    failed(points[1], runs, kind="diverged")
    done(points[0], runs, test=0.8, val=0.7)
    (selection,) = expand_tuned(grid, _lookup(runs))[0]
    assert selection.best.label == "p_output=0.25" and selection.scores[1].failed == 1


def test_the_report_shows_default_and_tuned_rows_the_search_and_holm(tmp_path):
    grid, jobs = write_grid(tmp_path / "g.yaml", GRID)
    runs, out = tmp_path / "runs", tmp_path / "out"
    values = iter([0.70, 0.71, 0.72, 0.80, 0.81, 0.83, 0.74, 0.76, 0.75, 0.78, 0.79, 0.9])
    for job in unique(jobs):
        value = next(values, 0.77)
        done(job, runs, test=value, val=value)
    _, tuned = expand_tuned(grid, _lookup(runs))
    for job in tuned:
        if not RunDir.of(job.id, runs).done_marker.exists():
            done(job, runs, test=0.85 + 0.01 * job.seed, val=0.85)
    write_report(grid, jobs, runs, out, "r")
    data = json.loads((out / "results.json").read_text())
    labels = [(r["variant"], r["point"]) for r in data["rows"]]
    assert labels[:3] == [("none", ""), ("dropout", ""), ("zoneout", "")]
    assert {p for _, p in labels[3:]} == {
        TUNED + "p_output=0.75",
        TUNED + data["search"]["selections"][1]["selected"],
    }
    assert not any(p.startswith("search: ") for _, p in labels)
    compared = [r for r in data["rows"] if r["variant"] != "none"]
    assert [r["p_holm"] for r in compared] == pytest.approx(holm([r["p_welch"] for r in compared]))
    table = (out / "table.md").read_text()
    assert "## Search" in table and "2 points × 1 seed (0) per variant" in table
    assert "p (Holm)" in table and "Holm's step-down method" in table


def test_holm_matches_a_worked_example():
    adjusted = holm([0.01, 0.04, 0.03, 0.005, math.nan])
    assert adjusted[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert math.isnan(adjusted[4])


@pytest.mark.parametrize(
    ("space", "error"),
    [
        ("    dropout: {regularizers.dropout.p_output: [0.2, 0.4, 0.6]}\n"
         "    zoneout: {regularizers.zoneout.z_c: [0.2, 0.4]}\n", "different numbers of points"),
        ("    variational: {regularizers.variational.p_input: [0.2]}\n", "unknown variant"),
        ("    dropout: [{regularizers.dropout.p_output: 0.2}, "
         "{regularizers.dropout.p_output: 0.2}]\n", "listed twice"),
        ("    dropout: {regularizers.zoneout.z_c: [0.2, 0.4]}\n", "resolve to the same config"),
    ],
)  # fmt: skip
def test_a_malformed_search_is_one_line_naming_the_file(tmp_path, space, error):
    body = GRID.split("  space:\n")[0] + "  space:\n" + space
    with pytest.raises(ConfigError, match=error) as err:
        write_grid(tmp_path / "g.yaml", body)
    assert "g.yaml" in str(err.value) and "\n" not in str(err.value)


def test_a_grid_has_a_sweep_or_a_search(tmp_path):
    with pytest.raises(ConfigError, match="a sweep or a search"):
        write_grid(tmp_path / "g.yaml", GRID + "sweep: [{train.lr: 0.1}, {train.lr: 0.2}]\n")


@pytest.mark.slow
def test_a_launch_runs_the_search_then_the_tuned_rows_it_selects(tmp_path, tiny, capsys):
    from regbench.cli import main

    lines = ["name: staged", "tasks:", "  seq_digits:"]
    lines += [f"    {k}: {v}" for k, v in tiny["seq_digits"].items()]
    lines += ["variants: [none, dropout]", "seeds: [0, 1]", "search:", "  seeds: [7]"]
    lines += ["  space: {dropout: {regularizers.dropout.p_output: [0.1, 0.3]}}", ""]
    path = tmp_path / "staged.yaml"
    path.write_text("\n".join(lines))
    runs, out = tmp_path / "runs", tmp_path / "out"
    args = [str(path), "--runs-dir", str(runs), "--out", str(out), "--wandb", "disabled"]
    assert main(["launch", *args]) == 0
    assert main(["report", str(path), "--runs-dir", str(runs), "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    (selection,) = data["search"]["selections"]
    tuned = [r for r in data["rows"] if r["point"].startswith(TUNED)]
    assert [r["point"] for r in tuned] == [TUNED + selection["selected"]]
    assert tuned[0]["n"] == 2 and tuned[0]["seeds"] == [0, 1]
    capsys.readouterr()
    assert main(["launch", *args]) == 0  # everything, tuned rows included, is done
    assert "every one of the 8 runs is done" in capsys.readouterr().out


def test_a_search_whose_points_all_failed_shows_its_failures_and_no_tuned_row(tmp_path):
    from fake_runs import failed

    grid, jobs = write_grid(tmp_path / "g.yaml", GRID)
    runs, out = tmp_path / "runs", tmp_path / "out"
    for job in unique(jobs):
        if job.point.startswith("search: ") and "p_output" in job.point:
            failed(job, runs, kind="diverged", error="diverged: loss nan")
        else:
            done(job, runs, test=0.8, val=0.8)
    selections, tuned = expand_tuned(grid, _lookup(runs))
    dropout = next(s for s in selections if s.variant == "dropout")
    assert dropout.chosen is None and not [j for j in tuned if j.config["variant"] == "dropout"]
    write_report(grid, jobs, runs, out, "r")
    data = json.loads((out / "results.json").read_text())
    assert sum("search: p_output" in f["label"] for f in data["failures"]) == 2
    table = (out / "table.md").read_text()
    assert "none eligible" in table and "## Failed runs" in table


def test_launch_prefers_a_done_retry_over_a_committed_failed_record(tmp_path):
    from fake_runs import failed

    from regbench.run.records import lookup, store_for

    _, jobs = write_grid(tmp_path / "g.yaml", GRID)
    runs, out = tmp_path / "runs", tmp_path / "out"
    job = next(j for j in jobs if j.point.startswith("search: "))
    failed(job, runs)
    store_for(out, runs).get(job.id)  # the failure is recorded
    shutil.rmtree(RunDir.of(job.id, runs).path)
    done(job, runs, test=0.8, val=0.9)  # then retried, and done
    assert lookup(job, runs, store_for(out)).state == "done"
