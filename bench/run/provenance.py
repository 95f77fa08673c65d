"""Where a number came from: code version, packages, hardware, command."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

PACKAGES = ("regbench", "torch", "lightning", "torchmetrics", "numpy", "scikit-learn", "pyyaml")
SOURCE = Path(__file__).resolve().parents[1]


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@functools.cache
def code_version() -> dict[str, Any]:
    """The git commit of the regbench checkout and whether it had uncommitted changes, read
    once per process when this module is imported: a long-lived worker keeps running the code
    it imported, whatever is committed later."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(SOURCE), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(dirty) if dirty is not None else None}


@functools.cache
def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": torch.multiprocessing.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "hostname": platform.node(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    return info


PLACEMENT = (
    "CUDA_VISIBLE_DEVICES",
    "SLURM_JOB_ID",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_JOB_PARTITION",
    "SLURM_RESTART_COUNT",
)


def placement() -> dict[str, str]:
    """Where the run ran: its devices and, under SLURM, its job (never credentials)."""
    return {name: os.environ[name] for name in PLACEMENT if name in os.environ}


def provenance(seeds: dict[str, int], command: list[str] | None = None) -> dict[str, Any]:
    return {
        "code": code_version(),
        "packages": package_versions(),
        "hardware": hardware(),
        "placement": placement(),
        "seeds": seeds,
        "command": command if command is not None else sys.argv,
    }


code_version()  # at import: the version of the code this process runs
