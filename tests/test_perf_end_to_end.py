"""The end-to-end row of `make perf` (perf/end_to_end.py, perf/plain_loop.py): the command
runs a tiny job both ways, the plain loop reaches regbench run's metrics, and the table is
written. No time is asserted: speed targets are met in benchmarks, not in unit tests."""

from __future__ import annotations

import pytest

from regbench.errors import ConfigError
from regbench.perf.end_to_end import (
    NOTES_MARKER,
    OUT_NAME,
    SIZES,
    agree,
    job_of,
    main,
    run_command,
)


@pytest.mark.slow
def test_tiny_job_runs_both_ways_with_the_same_metrics_and_writes_the_table(tmp_path, capsys):
    notes = f"{NOTES_MARKER}\n\nWhere the time goes: a hand-written note.\n"
    (tmp_path / OUT_NAME).write_text(f"# an earlier table\n\n{notes}")
    assert main(["--sizes", "tiny", "--rounds", "1", "--out", str(tmp_path)]) == 0  # 1: differ
    table = (tmp_path / OUT_NAME).read_text()
    assert "an earlier table" not in table and table.endswith(notes)
    rows = [line for line in table.splitlines() if line.startswith("| tiny |")]
    assert len(rows) == 2  # the times and the ratios
    ratios = rows[1].split(" | ")
    assert ratios[1] == "1" and ratios[-1] == "yes |"  # one round, same metrics
    regbench_val, plain_val = (float(v) for v in ratios[-2].split(" / "))
    assert regbench_val == plain_val
    assert "same metrics" in capsys.readouterr().out


def test_quick_size_is_quicks_own_job_and_its_command_reproduces_it(tmp_path):
    config, job_id, in_grid = job_of(SIZES["quick"])
    assert in_grid and config["task"]["params"]["T"] == 50 and config["train"]["max_epochs"] == 15
    command = run_command(SIZES["quick"], tmp_path, None)
    assert command[command.index("--runs-dir") + 1] == str(tmp_path)
    assert "train.lr=0.01" in command and "--data-dir" not in command
    _, tiny_id, tiny_in_grid = job_of(SIZES["tiny"])
    assert not tiny_in_grid and tiny_id != job_id


def test_metrics_that_differ_are_not_the_same_job():
    a = {"val": 0.25, "test": 0.5}
    assert agree(a, dict(a))
    assert not agree(a, {"val": 0.25 * (1 + 1e-4), "test": 0.5})
    assert not agree(a, {"val": 0.25, "test": 0.51})


def test_bad_sizes_and_rounds_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown size 'ptb'"):
        main(["--sizes", "ptb", "--out", str(tmp_path)])
    with pytest.raises(ConfigError, match="--data-dir"):
        main(["--sizes", "sst2", "--out", str(tmp_path)])
    with pytest.raises(ConfigError, match="--rounds"):
        main(["--sizes", "tiny", "--rounds", "0", "--out", str(tmp_path)])
