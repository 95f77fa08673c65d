"""A run directory, named by its job id: what one run leaves behind.

    config.json       the resolved config (written first)
    metrics.jsonl     one line per epoch: train loss, validation loss and metric, lr, time
    result.json       val metrics at the selected epoch, test metrics, cost (result.py)
    provenance.json   code version, packages, hardware, seeds, command
    failed.json       the error of a failed attempt (removed when a later attempt succeeds)
    attempts.json     every attempt, the epochs it resumed from, and the wall time of all of
                      them (written when an attempt starts and after each of its epochs)
    checkpoints/      best.ckpt (selected on validation) and last.ckpt (the last finished
                      epoch, to resume from)
    wandb/            the W&B run files (offline unless configured)
    done              written atomically, last: the run is finished

A run is `done` only if the marker exists; everything else is pending or failed.

A run directory may come from elsewhere (a shared disk, a download), so its checkpoints are
loaded without running code: `torch.load(weights_only=True)` with the allow-list
CHECKPOINT_GLOBALS, and a checkpoint whose pickle asks for anything else is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pickle
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch

from regbench.errors import ConfigError
from regbench.run.result import RunResult

State = Literal["done", "failed", "pending"]

# What a regbench checkpoint may hold beyond what torch's weights-only loader allows anyway
# (tensors, dicts, lists, tuples, str, int, float, bool, None). Lightning's checkpoint of a
# run holds only those: the model, optimizer and scheduler state dicts, the loop counters and
# the callbacks' states, whose random states are stored as tensors and plain lists
# (callbacks.RandomState). Add a class here only if a checkpoint must hold it, and name it
# exactly; every checkpoint load of regbench (this module's and Lightning's in train.py)
# allows these and nothing else.
CHECKPOINT_GLOBALS: tuple[Any, ...] = ()


class UnsafeCheckpoint(ConfigError):
    """A checkpoint whose pickle asks for more than CHECKPOINT_GLOBALS: it could run code."""


class Resume(NamedTuple):
    """Where an unfinished run resumes: its last.ckpt and the epoch that checkpoint ended."""

    path: Path
    epoch: int


def safe_loading() -> contextlib.AbstractContextManager[None]:
    """The allow-list for torch.load(weights_only=True), for loads that Lightning makes."""
    return torch.serialization.safe_globals(list(CHECKPOINT_GLOBALS))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint loaded without running code; UnsafeCheckpoint (one line naming the file)
    if its pickle asks for anything outside the allow-list. A damaged file (cut short by a
    kill) raises what torch raises for it."""
    with safe_loading(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            raise UnsafeCheckpoint(
                f"{path}: not a checkpoint regbench can load safely ({_forbidden(path, err)}; "
                "nothing in it was run); delete it to restart the run."
            ) from None


def _forbidden(path: Path, err: Exception) -> str:
    """What the pickle asks for, read without unpickling it."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a torch zip file: the names torch's loader stopped at
        names = re.findall(r"GLOBAL ([\w.]+)", str(err))
    if names:
        return f"its pickle calls {', '.join(sorted(set(names)))}, outside the allow-list"
    return "its pickle holds what no checkpoint holds"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and rename, so readers never see half a file."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` through a temporary file and rename (a kill leaves the old file whole)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
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

    @classmethod
    def of(cls, job_id: str, runs_dir: Path | str) -> RunDir:
        """The run directory of a job: <runs dir>/<job id>."""
        return cls(Path(runs_dir) / job_id)

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

    def read_result(self) -> RunResult:
        """result.json of a done run (result.py has its keys)."""
        return read_json(self.result)

    def resume_point(self) -> Resume | None:
        """checkpoints/last.ckpt of an unfinished run and the epoch it ended, if it and
        best.ckpt load safely. A damaged checkpoint (a kill in mid-write) is removed and the
        run starts afresh; one whose pickle asks for more than a checkpoint holds raises
        UnsafeCheckpoint and is kept, as evidence."""
        last = self.checkpoints / "last.ckpt"
        if self.state() == "done" or not last.is_file():
            return None
        try:
            epoch = int(load_checkpoint(last)["epoch"])
            if (self.checkpoints / "best.ckpt").is_file():
                load_checkpoint(self.checkpoints / "best.ckpt")
        except UnsafeCheckpoint:
            raise
        except Exception:
            shutil.rmtree(self.checkpoints, ignore_errors=True)
            return None
        return Resume(last, epoch)

    def check_checkpoints(self) -> None:
        """Raise UnsafeCheckpoint if last.ckpt or best.ckpt would run code when loaded.
        Read-only: a damaged file, or one another process is writing, is left to the job's
        own resume_point under its lock."""
        for name in ("last.ckpt", "best.ckpt"):
            path = self.checkpoints / name
            if not path.is_file():
                continue
            try:
                load_checkpoint(path)
            except UnsafeCheckpoint:
                raise
            except Exception:  # damaged or half-written: resume_point decides
                continue

    def begin_attempt(self, resume: Resume | None) -> dict[str, Any]:
        """attempts.json counting the attempt that starts now, written at once, so an attempt
        killed before its first checkpoint still counts; earlier attempts' wall time is kept
        whether this one resumes or starts afresh."""
        if self.attempts.is_file():
            record = read_json(self.attempts)
        else:  # a run that resumes from before attempts.json was kept had one attempt
            record = {"attempts": int(resume is not None), "resumed_from_epochs": []}
        record = {"wall_time_s": 0.0, **record, "attempts": record["attempts"] + 1}
        if resume is not None:
            record["resumed_from_epochs"] = [*record["resumed_from_epochs"], resume.epoch]
        write_json_atomic(self.attempts, record)
        return record

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
        """Clear the metrics and checkpoints an unfinished earlier attempt left (never called on
        a done run); attempts.json keeps counting."""
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
