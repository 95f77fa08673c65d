"""The command line: listings, a single run, and one-line errors with exit status 2."""

from __future__ import annotations

import re

import pytest

from regbench.arguments import LAUNCHER_NAMES, parser
from regbench.cli import main
from regbench.launch.launchers import LAUNCHERS


def test_tasks_and_variants_are_listed(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "seq_digits" in out and "cross_entropy" in out and "accuracy" in out
    assert main(["variants"]) == 0
    out = capsys.readouterr().out
    assert "zoneout" in out and "Krueger" in out


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["run", "--task", "seq_digit"], "Did you mean 'seq_digits'"),
        (["run", "--task", "adding", "--variant", "zonout"], "Did you mean 'zoneout'"),
        (["run", "--task", "adding", "--set", "train.lr"], "expected KEY=VALUE"),
        (["launch", "nope.yaml"], "nope.yaml: grid file not found"),
    ],
)
def test_errors_are_one_line_before_anything_runs(capsys, argv, fragment):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and err.startswith("regbench: error:")


def test_single_run_then_already_done(tmp_path, tiny, capsys):
    sets = [arg for k, v in tiny["copy_memory"].items() for arg in ("--set", f"{k}={v}")]
    argv = [
        "run",
        "--task",
        "copy_memory",
        "--variant",
        "variational",
        "--seed",
        "1",
        "--runs-dir",
        str(tmp_path),
        *sets,
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    number = r"[\d.e+-]+"
    line = rf"test cross_entropy {number}, val cross_entropy {number} \(best epoch \d+\) → "
    assert re.search(line + r"\S+result\.json", out), out
    assert main(argv) == 0
    assert "already done" in capsys.readouterr().out


def test_slurm_launcher_options_are_checked_before_anything_is_submitted(tmp_path, capsys):
    bad = tmp_path / "slurm.yaml"
    bad.write_text("partiton: debug\n")
    assert main(["launch", "quick", "--runs-dir", str(tmp_path), "--slurm-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "partiton" in err and "Did you mean 'partition'" in err and err.count("\n") == 1
    argv = ["launch", "quick", "--runs-dir", str(tmp_path), "--launcher", "slurm", "--workers", "2"]
    assert main(argv) == 2
    assert "--workers" in capsys.readouterr().err


def test_the_launcher_choices_are_the_registry():
    """--launcher offers every registered launcher (named in cli.py, so --help imports none)."""
    launch = parser()._subparsers._group_actions[0].choices["launch"]
    (action,) = [a for a in launch._actions if a.dest == "launcher"]
    assert tuple(action.choices) == LAUNCHER_NAMES == tuple(LAUNCHERS)
