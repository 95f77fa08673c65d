"""Run records: a report writes one per finished or failed job, rebuilds every table from
the records alone, and refuses a damaged or hand-edited one; a launch counts a committed
record as finished."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fake_runs import done, failed, write_grid

from regbench.errors import ConfigError
from regbench.launch.grid import pending
from regbench.report.write import write_report
from regbench.run.records import RecordStore, from_run_dir, load, store_for
from regbench.run.rundir import RunDir

GRID = "name: rec\ntasks: [seq_digits]\nvariants: [none, dropout]\nseeds: [0, 1, 2]\n"


def _finished_grid(tmp_path: Path):
    grid, jobs = write_grid(tmp_path / "rec.yaml", GRID)
    runs = tmp_path / "runs"
    for i, job in enumerate(jobs[:-1]):
        done(job, runs, 0.8 + 0.01 * i, curve=[0.5, 0.7, 0.8 + 0.01 * i])
    failed(jobs[-1], runs, kind="diverged", error="diverged: loss nan at step 3")
    return grid, jobs, runs


def _without_dates(folder: Path, generated: str) -> dict[str, bytes]:
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            data = path.read_bytes().replace(generated.encode(), b"<generated>")
            out[str(path.relative_to(folder))] = data.replace(generated[:10].encode(), b"<day>")
    return out


def test_a_report_rebuilds_identically_from_committed_records_alone(tmp_path):
    grid, jobs, runs = _finished_grid(tmp_path)
    out = tmp_path / "results" / "rec"
    write_report(grid, jobs, runs, out, "regbench report rec")
    records = sorted(p.stem for p in (out / "records").glob("*.json"))
    assert records == sorted(j.id for j in jobs)  # five done, one failed

    clone = tmp_path / "clone" / "results" / "rec"
    shutil.copytree(out, clone)
    shutil.rmtree(runs)  # a fresh clone: no run directories
    first = json.loads((clone / "manifest.json").read_text())["generated"]
    write_report(grid, jobs, tmp_path / "no-runs", clone, "regbench report rec")
    second = json.loads((clone / "manifest.json").read_text())["generated"]
    before = _without_dates(out, first)
    after = _without_dates(clone, second)
    assert before.keys() == after.keys()
    assert [name for name in before if before[name] != after[name]] == []
    rows = {r["variant"]: r for r in json.loads((clone / "results.json").read_text())["rows"]}
    assert rows["dropout"]["n"] == 2 and rows["dropout"]["failed"] == 1


def test_a_launch_counts_committed_records_as_finished(tmp_path):
    grid, jobs, runs = _finished_grid(tmp_path)
    out = tmp_path / "results" / "rec"
    write_report(grid, jobs, runs, out, "r")
    shutil.rmtree(runs)
    store = store_for(out)
    assert pending(jobs, runs, retry_failed=False, store=store) == []
    assert pending(jobs, runs, retry_failed=True, store=store) == [jobs[-1]]
    assert pending(jobs, runs, retry_failed=False) == jobs  # without the records: everything


def test_a_done_record_is_never_replaced(tmp_path):
    _, jobs, runs = _finished_grid(tmp_path)
    store = RecordStore(tmp_path / "records")
    record = from_run_dir(RunDir.of(jobs[0].id, runs))
    store.add(record)
    failed(jobs[0], tmp_path / "other", error="later failure")
    store.add(from_run_dir(RunDir.of(jobs[0].id, tmp_path / "other")))
    assert load(tmp_path / "records" / f"{jobs[0].id}.json").state == "done"


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda d: d["result"]["test"].update(accuracy=0.99), "checksum"),
        (lambda d: d.pop("epochs"), "missing epochs"),
        (lambda d: d.update(schema=99), "schema 99"),
    ],
)
def test_an_edited_or_damaged_record_is_refused_naming_it(tmp_path, damage, why):
    grid, jobs, runs = _finished_grid(tmp_path)
    out = tmp_path / "out"
    write_report(grid, jobs, runs, out, "r")
    path = out / "records" / f"{jobs[0].id}.json"
    data = json.loads(path.read_text())
    damage(data)
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=why) as err:
        store_for(out)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_record_under_another_job_id_or_not_json_is_refused(tmp_path):
    grid, jobs, runs = _finished_grid(tmp_path)
    out = tmp_path / "out"
    write_report(grid, jobs, runs, out, "r")
    source = out / "records" / f"{jobs[0].id}.json"
    moved = out / "records" / f"{jobs[1].id}.json"
    shutil.copy(source, moved)
    with pytest.raises(ConfigError, match=f"hashes to job {jobs[0].id}, not {jobs[1].id}"):
        store_for(out)
    moved.write_bytes(b"\x00\xff binary")
    with pytest.raises(ConfigError, match="unreadable"):
        store_for(out)


def test_records_hold_config_result_epochs_and_provenance_but_no_checkpoints(tmp_path):
    _, jobs, runs = _finished_grid(tmp_path)
    run = RunDir.of(jobs[0].id, runs)
    (run.checkpoints).mkdir()
    (run.checkpoints / "last.ckpt").write_bytes(b"x" * 1000)
    record = from_run_dir(run).to_json()
    assert record["config"] == jobs[0].config
    assert [e["val/accuracy"] for e in record["epochs"]] == [0.5, 0.7, 0.8]
    assert record["provenance"]["code"]["commit"].startswith("0123")
    assert "ckpt" not in json.dumps(record)


def test_rows_reported_before_records_keep_their_numbers_marked_until_rerun(tmp_path):
    grid, jobs, runs = _finished_grid(tmp_path)
    out = tmp_path / "results" / "rec"
    write_report(grid, jobs, runs, out, "r")
    before = {r["variant"]: r for r in json.loads((out / "results.json").read_text())["rows"]}
    shutil.rmtree(runs)
    shutil.rmtree(out / "records")  # as committed before records existed
    for _ in range(2):  # and again from that report
        write_report(grid, jobs, runs, out, "r")
        rows = {r["variant"]: r for r in json.loads((out / "results.json").read_text())["rows"]}
        assert rows["none"]["test_mean"] == before["none"]["test_mean"]
        assert rows["none"]["numbers_from"] == "previous" and rows["none"]["pending"] == 3
        assert "no run records" in rows["none"]["stale"]["changes"][0]
    assert "† stale (no run records" in (out / "table.md").read_text()


def test_report_and_launch_from_the_command_line_use_the_records(tmp_path, capsys):
    from regbench.cli import main

    _, jobs = write_grid(tmp_path / "rec.yaml", GRID)
    runs, out = tmp_path / "runs", tmp_path / "results" / "rec"
    for job in jobs:
        done(job, runs, 0.8)
    args = [str(tmp_path / "rec.yaml"), "--runs-dir", str(runs), "--out", str(out)]
    assert main(["report", *args]) == 0
    shutil.rmtree(runs)
    capsys.readouterr()
    assert main(["launch", *args]) == 0
    assert "every one of the 6 runs is done; nothing to train" in capsys.readouterr().out
    assert main(["status", *args]) == 0
    assert "6 done" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"] == f"regbench report {tmp_path / 'rec.yaml'} --out {out}"


def test_a_failed_record_never_overwrites_a_done_one_written_by_another_report(tmp_path):
    _, jobs, runs = _finished_grid(tmp_path)
    folder = tmp_path / "records"
    early, late = RecordStore(folder), RecordStore(folder)  # both read an empty folder
    late.add(from_run_dir(RunDir.of(jobs[0].id, runs)))
    failed(jobs[0], tmp_path / "other", error="stale failure")
    early.add(from_run_dir(RunDir.of(jobs[0].id, tmp_path / "other")))
    assert load(folder / f"{jobs[0].id}.json").state == "done"


def test_limited_configs_carry_the_limits_version_and_grids_do_not(tiny):
    from regbench.plan.config import resolve
    from regbench.plan.jobs import LIMITS_VERSION, identity

    plain = resolve("seq_digits", "none", "lstm", 0, tiny["seq_digits"])
    limited = resolve("seq_digits", "none", "lstm", 0, {"train.limit_eval_batches": 2})
    assert "limits_version" not in identity(plain)["train"]
    assert identity(limited)["train"]["limits_version"] == LIMITS_VERSION


def test_a_record_trained_with_another_thread_count_is_found(tmp_path):
    from regbench.run.records import thread_mismatches

    _, jobs, runs = _finished_grid(tmp_path)
    store = RecordStore(tmp_path / "records", runs)
    for job in jobs[:2]:
        provenance = json.loads(RunDir.of(job.id, runs).provenance.read_text())
        provenance["hardware"]["torch_threads"] = 1 if job is jobs[0] else 2
        RunDir.of(job.id, runs).provenance.write_text(json.dumps(provenance))
        store.get(job.id)
    assert thread_mismatches(store) == [jobs[1].id]
