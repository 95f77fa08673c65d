"""Install tests/probe_task.py as a task plugin (package `regbench_probe`) for tests that run
jobs in other processes: pip installs it into a folder that goes on PYTHONPATH, so spawned
workers and SLURM jobs find it, and it is registered in this process too."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from regbench.tasks import registry

SOURCE = Path(__file__).resolve().parent / "probe_task.py"


def install_probe(target: Path) -> Path:
    """The plugin package built and installed into target/site; returns the site folder."""
    package = target / "package"
    (package / "regbench_probe").mkdir(parents=True)
    shutil.copy(SOURCE, package / "regbench_probe" / "__init__.py")
    (package / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "regbench-probe"\nversion = "0.1"\n'
        '[project.entry-points."regbench.tasks"]\nprobe = "regbench_probe:Probe"\n'
    )
    site = target / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip, "--target", str(site), str(package)], check=True, capture_output=True)
    return site


@contextlib.contextmanager
def probe_installed(target: Path, mp: pytest.MonkeyPatch) -> Iterator[Path]:
    """The probe on PYTHONPATH and registered here; unregistered afterwards."""
    site = install_probe(target)
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    mp.setenv("PYTHONPATH", path)
    mp.syspath_prepend(str(site))
    registry.load_plugins.cache_clear()
    try:
        yield site
    finally:
        registry._TASKS.pop("probe", None)
        registry.load_plugins.cache_clear()
        sys.modules.pop("regbench_probe", None)
