"""A run directory, named by its job id: what one run leaves behind.

    config.json       the resolved config (written first)
    metrics.jsonl     one line per epoch: train loss, validation loss and metric, lr, time
    result.json       val metrics at the selected epoch, test metrics, cost
    provenance.json   code version, packages, hardware, seeds, command
    failed.json       the error of a failed attempt (removed when a later attempt succeeds)
    attempts.json     how many attempts the run took and the epochs it resumed from
    checkpoints/      best.ckpt (selected on validation) and last.ckpt (to resume from)
    wandb/            the W&B run files (offline unless configured)
    done              written atomically, last: the run is finished

A run is `done` only if the marker exists; everything else is pending or failed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import torch

State = Literal["done", "failed", "pending"]


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    with open(path) as f:
        return json.load(f)


class RunDir:
    """Paths and state of one run directory."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    config = property(lambda self: self.path / "config.json")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    result = property(lambda self: self.path / "result.json")
    provenance = property(lambda self: self.path / "provenance.json")
    failed = property(lambda self: self.path / "failed.json")
    attempts = property(lambda self: self.path / "attempts.json")
    checkpoints = property(lambda self: self.path / "checkpoints")
    done_marker = property(lambda self: self.path / "done")

    def state(self) -> State:
        if self.done_marker.exists():
            return "done"
        if self.failed.exists():
            return "failed"
        return "pending"

    def resume_point(self) -> Path | None:
        """checkpoints/last.ckpt of an unfinished run, if it loads; a damaged one (a kill in
        mid-write) is removed and the run starts afresh."""
        last = self.checkpoints / "last.ckpt"
        if self.state() == "done" or not last.is_file():
            return None
        try:
            torch.load(last, map_location="cpu", weights_only=False)
        except Exception:
            shutil.rmtree(self.checkpoints, ignore_errors=True)
            return None
        return last

    @contextlib.contextmanager
    def lock(self) -> Iterator[bool]:
        """An exclusive lock on the run directory (released when the process dies); yields
        False when another process holds it."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".lock", "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            handle.truncate(0)
            handle.write(str(os.getpid()))
            handle.flush()
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def holder(self) -> int | None:
        """The pid holding the lock, read from /proc/locks without touching the lock (taking
        it, even shared, could make a launcher starting this job find it busy)."""
        try:
            inode = os.stat(self.path / ".lock").st_ino
            with open("/proc/locks") as locks:
                for line in locks:
                    fields = line.split()
                    if "FLOCK" in fields and int(fields[-3].split(":")[-1]) == inode:
                        return int(fields[-4])
        except (OSError, ValueError, IndexError):
            return None
        return None

    def start_fresh(self) -> None:
        """Clear what an unfinished earlier attempt left (never called on a done run)."""
        if self.state() == "done":
            raise RuntimeError(f"{self.path} is done; refusing to overwrite a finished run")
        self.path.mkdir(parents=True, exist_ok=True)
        self.metrics.unlink(missing_ok=True)
        shutil.rmtree(self.checkpoints, ignore_errors=True)

    def mark_done(self) -> None:
        """The last write of a run."""
        write_json_atomic(self.done_marker, {"result": "result.json"})

    def epochs(self) -> list[dict[str, Any]]:
        if not self.metrics.exists():
            return []
        with open(self.metrics) as f:
            return [json.loads(line) for line in f if line.strip()]
