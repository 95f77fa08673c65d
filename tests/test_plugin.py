"""A task from another package, registered by entry point: the README's example, installed
into a throwaway folder and run through a grid in subprocesses."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(language: str) -> str:
    section = README.read_text().split("## Add a task", 1)[1]
    return re.search(rf"```{language}\n(.*?)```", section, re.S)[1]


def install_plugin(tmp_path: Path) -> Path:
    package = tmp_path / "plugin"
    (package / "regbench_parity").mkdir(parents=True)
    (package / "regbench_parity" / "__init__.py").write_text(readme_block("python"))
    (package / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "regbench-parity"\nversion = "0.1"\n' + readme_block("toml")
    )
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(package),
        ],
        check=True,
        capture_output=True,
    )
    return site


def test_plugin_task_runs_through_a_grid(tmp_path):
    site = install_plugin(tmp_path)
    grid = tmp_path / "plugin.yaml"
    grid.write_text(
        "tasks:\n  parity: {task.params.n_train: 200, train.max_epochs: 2}\n"
        "variants: [none, zoneout]\nseeds: [0]\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = [sys.executable, "-m", "regbench"]
    listed = subprocess.run([*run, "tasks"], env=env, capture_output=True, text=True, check=True)
    assert "parity" in listed.stdout
    runs, out = tmp_path / "runs", tmp_path / "results"
    subprocess.run(
        [*run, "launch", str(grid), "--runs-dir", str(runs)],
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [*run, "report", str(grid), "--runs-dir", str(runs), "--out", str(out)],
        env=env,
        check=True,
        capture_output=True,
    )
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["task"], r["variant"], r["n"]) for r in rows] == [
        ("parity", "none", 1),
        ("parity", "zoneout", 1),
    ]
    assert "| parity | accuracy | ↑ higher | none |" in (out / "table.md").read_text()
